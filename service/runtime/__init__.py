"""The one stream runtime of both modes, over a small log interface.

    routes / cluster partition --push--> Runtime: admission (queue depth, memory budget: 429,
                                         413), a queue per stream (its batches in arrival
                                         order), the scheduler (batches of many streams stepped
                                         in one call) while the log commits them, then the
                                         answer, the metrics and the events, and snapshots
                                         when due

runtime.py: the Runtime; batch.py: one batch between the log and its answer; log.py: the
StreamLog interface (service/store.py for one process, service/cluster/log.py for JetStream);
admission.py: queue depth and memory budget;
scheduler.py: the cross-stream step; digests.py: what each recent batch was (reused seqs);
pool.py: the worker threads.

Nothing is imported here: service/live.py imports the digests, and the runtime imports it.
"""
