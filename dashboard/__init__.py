"""Streamlit-side helpers shared by the pages: session state, shared resources, the status bar."""
