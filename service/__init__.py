"""dimwatch's REST service: `service.app.create_app(settings)` and `service.server.run(settings)`.

Layout: settings (DIMWATCH_*), schemas (request/response bodies), routes/ (one router per
resource), deps (dependency aliases), errors (the one error shape), decode (bodies -> arrays),
registry (live streams, ordered bounded queues, worker threads), live (one stream's state),
history (bounded BIC history), store (SQLite batch log + snapshots), pubsub (events fan-out),
metrics (Prometheus), server (uvicorn). docs/operations.md says what is durable when.
"""
