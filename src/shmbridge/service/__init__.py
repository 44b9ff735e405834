"""The service process: two doors around one core.

``sessions/`` is the shared-memory door (the Unix socket, one thread per session) and ``http/`` the HTTP
door (FastAPI on uvicorn); both hand pixels to ``core.ServiceCore``, which runs them on the
``engine_pool`` (through ``streaming`` when a request names a screen stream) and counts them in
``metrics``. ``wakeups`` is the low-latency hold, ``fd_budget`` the descriptors both doors draw from,
``waiting`` the loop's bounded waits on threads, and ``server.Server`` starts and stops it all. Nothing
here is imported by the client, and importing this package imports nothing.
"""
