"""MNIST Studio: every page of the app, registered once.

Run with ``streamlit run app.py``; models come from ``$MNIST_STUDIO_ARTIFACTS`` or
``artifacts/``. Each page is a short script in ``app_pages/``; the pieces they share live
in ``ui/``, and all machine-learning and image work in ``mnist_core/``.

The folder is not called ``pages/``: when a folder of that name sits beside the main
script, Streamlit (1.67) runs its older folder-based navigation around this script
(``PagesManager.uses_pages_directory``), and the two navigations fight: a sidebar list
appears, and a link to a page opens with a "Page not found" dialog.
"""

import streamlit as st

st.set_page_config(page_title="MNIST Studio", page_icon="✏️", layout="wide")

# url_path keeps the addresses the app has always had (bookmarks, links sent to a class).
PAGES = {
    "Read digits": [
        st.Page("app_pages/draw.py", title="Draw", icon=":material/draw:", default=True),
        st.Page("app_pages/upload.py", title="Upload", icon=":material/upload:", url_path="Upload"),
    ],
    "Compare": [
        st.Page("app_pages/compare_models.py", title="Compare models",
                icon=":material/leaderboard:", url_path="Compare_models"),
        st.Page("app_pages/confidence.py", title="Confidence", icon=":material/verified:",
                url_path="Confidence"),
        st.Page("app_pages/training_curves.py", title="Training curves",
                icon=":material/show_chart:", url_path="Training_curves"),
        st.Page("app_pages/model_maps.py", title="Model maps", icon=":material/scatter_plot:",
                url_path="Model_maps"),
    ],
    "Classroom": [
        st.Page("app_pages/train_live.py", title="Train live", icon=":material/model_training:",
                url_path="Train_live"),
        st.Page("app_pages/look_inside.py", title="Look inside", icon=":material/biotech:",
                url_path="Look_inside"),
        st.Page("app_pages/stress_test.py", title="Stress test", icon=":material/tune:",
                url_path="Stress_test"),
        st.Page("app_pages/attack.py", title="Adversarial digits", icon=":material/bug_report:",
                url_path="Adversarial_digits"),
        st.Page("app_pages/kaggle.py", title="Kaggle", icon=":material/emoji_events:",
                url_path="Kaggle"),
    ],
    "Class": [
        st.Page("app_pages/collect.py", title="Collect", icon=":material/edit_note:",
                url_path="Collect"),
        st.Page("app_pages/class_dashboard.py", title="Class dashboard",
                icon=":material/groups:", url_path="Class_dashboard"),
        st.Page("app_pages/teach.py", title="Teach the models", icon=":material/school:",
                url_path="Teach"),
    ],
}

st.navigation(PAGES, position="top").run()
