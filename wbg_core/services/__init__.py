"""Services: the layer between the Streamlit pages (app.py, app_common.py, app_pages/) and the
core of wbg_core. The pages lay out widgets; what they read, compute, format and run in the
background lives here, by topic (formula input, known data, figures, model status, window
screening, structures, campaigns, jobs, window links). Nothing here imports streamlit, so
every service is tested without a browser. No names are re-exported: import the module.
"""
