"""The web app: paint the hole of a face (or of a whole photo) in a browser and fill it with the
completion engine, over a REST API with server-sent progress.

    python serve.py --checkpointDir DIR        # or: dcgan-serve, make serve

app.py: the FastAPI routes; security.py: who may call them (Host, Origin, token); service.py:
requests into jobs; jobs.py: the job store and the batching worker; imaging.py: uploads, masks
and results; server.py: uvicorn, start and stop;
static/: the page (index.html, app.js, style.css) and the offline API page (docs.html, docs.js).
"""
