"""dimwatch's REST service: `service.app.create_app(settings)` and `service.server.run(settings)`.

Layout: settings (DIMWATCH_*), schemas (request/response bodies), routes/ (one router per
resource), deps (dependency aliases), errors (the one error shape), decode (bodies -> arrays),
runtime/ (the one stream runtime of both modes: ordered queues, admission, the batch path,
the cross-stream scheduler, over a small log interface), registry (the embedded mode: the
runtime on the SQLite store), cluster/ (the cluster mode: the runtime on JetStream), live (one
stream's state), history (bounded BIC history), store and commit (SQLite batch log, snapshots,
group commit), pubsub (events fan-out), metrics (Prometheus), server (uvicorn).
docs/operations.md says what is durable when.
"""
