"""Calling retract from Python with grpcio: record a delivery (as the gateway does), open the
Retract tab, start a retract, and follow its progress with WatchRetract, resuming from the
last sequence after the stream is cut (here the example cuts its own stream after the first
event, as a dropped connection or a server restart would; UNAVAILABLE is resumed the same way).

    client/python/run.sh --endpoint 127.0.0.1:50051 --tenant acme \
        --message-id '<urgent-wire-transfer@evil.example>' \
        --recipient alice@contoso.com --recipient bob@contoso.com

The caller token comes from RETRACT_TOKEN (`retractctl token`, or the one retract-demo
prints). Exits non-zero when the job does not succeed or an event is missing or repeated.
"""

import argparse
import os
import sys
import time
import uuid

import grpc
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from retract.v1 import retract_service_pb2 as pb
from retract.v1 import retract_service_pb2_grpc as rpc

# What a broken stream looks like; everything else is a real refusal.
RESUMABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
             grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN}


def describe(err: grpc.RpcError) -> str:
    """The code, the ErrorInfo reason and the invalid fields of a failed call."""
    text = f"{err.code().name}: {err.details()}"
    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            text += f" [reason {info.reason}]"
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            text += "".join(f" [{v.field}: {v.description}]" for v in bad.field_violations)
    return text


def follow(stub, metadata, tenant, job_id, cut_after_first=True):
    """Every event of the job once, in order, until JobFinished — resuming after cuts."""
    events, last, cuts = [], 0, 0
    while True:
        call = stub.WatchRetract(
            pb.WatchRetractRequest(tenant_id=tenant, job_id=job_id, after_sequence=last),
            metadata=metadata, timeout=120)
        try:
            for response in call:
                event = response.event
                kind = event.WhichOneof("kind")
                if kind == "heartbeat" or event.sequence <= last:
                    continue
                if event.sequence != last + 1:
                    sys.exit(f"FAIL: a gap: expected sequence {last + 1}, got {event.sequence}")
                last = event.sequence
                events.append(event)
                show(event)
                if kind == "job_finished":
                    return events, cuts
                if cut_after_first and cuts == 0:
                    cuts += 1
                    print(f"(cutting the stream after #{last}; resuming from there)")
                    call.cancel()
                    break
            else:
                cuts += 1  # ended early (a server going away politely): resume
        except grpc.RpcError as err:
            if err.code() not in RESUMABLE:
                raise
            if err.code() != grpc.StatusCode.CANCELLED:
                cuts += 1
                print(f"(stream broken: {describe(err)}; resuming after #{last})")
                time.sleep(0.5)


def show(event):
    kind = event.WhichOneof("kind")
    if kind == "job_started":
        print(f"#{event.sequence} job {event.job_id} started: "
              f"{len(event.job_started.targets)} mailboxes")
    elif kind == "recipient_update" and event.recipient_update.phase == pb.RECIPIENT_PHASE_DONE:
        u = event.recipient_update
        print(f"#{event.sequence} {u.mailbox} {pb.RecipientOutcome.Name(u.outcome)} "
              f"copies {u.copies_deleted_count}/{u.copies_found_count}")
    elif kind == "conversation_update":
        c = event.conversation_update
        print(f"#{event.sequence} depth {c.depth} {c.mailbox}: {c.messages_found_count} in the conversation")
    elif kind == "job_finished":
        print(f"#{event.sequence} finished {pb.JobState.Name(event.job_finished.state)}: "
              f"{event.job_finished.detail}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:50051", help="host:port (plaintext)")
    parser.add_argument("--tenant", default="acme")
    parser.add_argument("--message-id", required=True)
    parser.add_argument("--sender", default="ceo@evil.example")
    parser.add_argument("--subject", default="Urgent: wire transfer today")
    parser.add_argument("--recipient", action="append", required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    token = os.environ.get("RETRACT_TOKEN") or sys.exit("set RETRACT_TOKEN")
    metadata = [("authorization", f"Bearer {token}")]

    with grpc.insecure_channel(args.endpoint) as channel:
        stub = rpc.RetractServiceStub(channel)

        delivered = timestamp_pb2.Timestamp()
        delivered.FromSeconds(int(time.time()) - 600)
        recorded = stub.RecordDelivery(pb.RecordDeliveryRequest(
            tenant_id=args.tenant,
            delivery=pb.Delivery(internet_message_id=args.message_id, sender=args.sender,
                                 subject=args.subject, delivery_time=delivered,
                                 recipients=args.recipient)),
            metadata=metadata, timeout=10)
        print(f"recorded: {pb.RecordOutcome.Name(recorded.outcome)}")

        tab = stub.GetRetractOptions(pb.GetRetractOptionsRequest(
            tenant_id=args.tenant, internet_message_id=args.message_id),
            metadata=metadata, timeout=10)
        for r in tab.recipients:
            print(f"  {r.address}: {pb.Eligibility.Name(r.eligibility)} {r.detail}")

        try:
            stub.GetRetractOptions(pb.GetRetractOptionsRequest(
                tenant_id=args.tenant, internet_message_id="no angle brackets"),
                metadata=metadata, timeout=10)
            sys.exit("FAIL: an invalid message id was accepted")
        except grpc.RpcError as err:
            print(f"refused as expected: {describe(err)}")
            if "internet_message_id" not in describe(err):
                sys.exit("FAIL: the refusal does not name the field")

        job = stub.StartRetract(pb.StartRetractRequest(
            tenant_id=args.tenant, request_id=str(uuid.uuid4()),
            options=pb.RetractOptions(internet_message_id=args.message_id,
                                      delete_mode=pb.DELETE_MODE_SOFT, dry_run=args.dry_run,
                                      reason="Python example")),
            metadata=metadata, timeout=10).job
        events, cuts = follow(stub, metadata, args.tenant, job.job_id)

    finished = events[-1].job_finished
    if [e.sequence for e in events] != list(range(1, len(events) + 1)):
        sys.exit("FAIL: events missing or repeated")
    if cuts < 1:
        sys.exit("FAIL: the stream was never resumed")
    if finished.state != pb.JOB_STATE_SUCCEEDED:
        sys.exit(f"FAIL: the job ended {pb.JobState.Name(finished.state)}")
    print(f"OK: {len(events)} events, each once, resumed {cuts} time(s)")


if __name__ == "__main__":
    main()
