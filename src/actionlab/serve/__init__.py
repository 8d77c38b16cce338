"""actionlab.serve: a trained model behind HTTP (FastAPI + uvicorn) with a page to try it (``actionlab serve``)."""
