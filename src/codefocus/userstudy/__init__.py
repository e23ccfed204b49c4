"""RQ4 as a tool: a blinded, randomized rating study of attribution methods.

``design`` builds the study from a codefocus study's attributions; ``app`` serves it to
participants (Starlette on uvicorn); ``responses`` stores every answer in SQLite; ``analysis``
compares the methods (Welch's t-tests with Holm's correction, Figure 5-style charts).
"""
