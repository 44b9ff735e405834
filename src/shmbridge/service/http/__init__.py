"""The HTTP door: the FastAPI application and everything only it uses.

- ``app``: ``create_app``, the middleware order and the service's own read-only routes (health, info,
  metrics);
- routes: ``ocr`` (``POST /api/v1/ocr``, the image as the body), ``legacy`` (the old JSON API),
  ``shmem`` (named regions), ``streams`` (an HTTP client's screen streams);
- request bodies: ``uploads`` (a raw body or a multipart file), ``sniff`` (format and size from the first
  bytes), ``image_bounds`` (a TIFF's frame chain), ``images`` (bytes to pixels), ``render`` (``?render=png``);
- shared by the routes: ``context`` (``HttpContext``, request ids, client keys, the decode gate),
  ``models`` (request and response bodies), ``errors`` (the one error shape and the body limits),
  ``regions`` (the registry of named regions, read with ``pread``);
- around the routes: ``access`` (the access log), ``auth`` (the bearer token), ``body_budget`` (bytes in
  flight), ``docs`` (Swagger UI from the wheel), ``connections`` (uvicorn's protocol under the fd budget).

Importing the package imports nothing of FastAPI (``connections`` is needed without it). No module here
may bypass ``ServiceCore`` or load anything from outside the service.
"""
