"""moto's server on loopback, for the tests. Usage: moto_launcher.py PORT

With CD2_LAMBDA_FORWARD set (the address of `cargo lambda watch`), Lambda invocations,
the Step Functions interpreter's included, go to the real Rust handlers there instead of
moto's echo; a handler's error comes back with X-Amz-Function-Error, as Lambda does it.
With CD2_LAMBDA_ANSWERS set too (a file), each invocation is appended to it as one JSON
line: the function, the request, the answer and the error type, if any. moto's interpreter
does not list a distributed Map's child executions, so this is how the demo sees a table's
calls as they end.
"""
import json
import os
import sys
import threading
import urllib.error
import urllib.request

from moto.awslambda_simple.models import LambdaSimpleBackend

FORWARD = os.environ.get("CD2_LAMBDA_FORWARD")
ANSWERS = os.environ.get("CD2_LAMBDA_ANSWERS")
_answers_lock = threading.Lock()


def record(name, body, answer, error):
    if not ANSWERS:
        return
    line = json.dumps({
        "function": name,
        "request": body.decode("utf8", "replace"),
        "answer": answer.decode("utf8", "replace"),
        "error": error,
    })
    with _answers_lock, open(ANSWERS, "a", encoding="utf8") as f:
        f.write(line + "\n")


def forward(self, function_name, qualifier, body, headers, response_headers):
    # An ARN or a name, maybe with a qualifier: the binary is the bare name.
    name = function_name.split(":function:")[-1].split(":")[0]
    data = body if isinstance(body, bytes) else (body or "{}").encode()
    request = urllib.request.Request(
        f"{FORWARD}/2015-03-31/functions/{name}/invocations",
        data=data,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=900) as answer:
            error = answer.headers.get("X-Amz-Function-Error")
            if error:
                response_headers["x-amz-function-error"] = error
            out = answer.read()
    except urllib.error.HTTPError as e:
        response_headers["x-amz-function-error"] = error = "Unhandled"
        out = e.read()
    record(name, data, out, error)
    return out


if FORWARD:
    LambdaSimpleBackend.invoke = forward


# moto applies a change set in one go and, when a resource fails, raises from
# ExecuteChangeSet and leaves the stack half made. CloudFormation instead answers the call,
# records the resource's *_FAILED event with its reason and rolls the stack back: do that,
# so that deploy's failure path (the failing resource named, ROLLBACK_COMPLETE and the way
# out of it) meets what AWS does.
import moto.cloudformation.parsing as cfn_parsing  # noqa: E402
from moto.cloudformation.models import CloudFormationBackend, Event  # noqa: E402

_create_resource = cfn_parsing.parse_and_create_resource
_failed = {}


def create_resource(logical_id, resource_json, *args, **kwargs):
    try:
        return _create_resource(logical_id, resource_json, *args, **kwargs)
    except Exception:
        _failed.setdefault("resource", (logical_id, resource_json.get("Type", "")))
        raise


_execute_change_set = CloudFormationBackend.execute_change_set


def execute_change_set(self, change_set_name, stack_name=None):
    _failed.clear()
    try:
        return _execute_change_set(self, change_set_name, stack_name)
    except Exception as e:
        change_set = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None
        )
        if change_set is None:
            raise
        stack = self.stacks[change_set.stack_id]
        logical_id, kind = _failed.get("resource", (stack.name, "AWS::CloudFormation::Stack"))
        create = change_set.change_set_type == "CREATE"
        reason = getattr(e, "message", None) or str(e)
        stack.events.append(
            Event(stack.stack_id, stack.name, logical_id, "", kind,
                  "CREATE_FAILED" if create else "UPDATE_FAILED", reason, None)
        )
        prefix = "ROLLBACK" if create else "UPDATE_ROLLBACK"
        stack._add_stack_event(f"{prefix}_IN_PROGRESS", resource_status_reason=f"The following resource(s) failed: [{logical_id}]")
        stack._add_stack_event(f"{prefix}_COMPLETE")
        stack.status = f"{prefix}_COMPLETE"
        change_set.execution_status = "EXECUTE_FAILED"


cfn_parsing.parse_and_create_resource = create_resource
CloudFormationBackend.execute_change_set = execute_change_set

# moto's Distributed Map ResultWriter writes only an empty manifest (its code leaves the
# results out, "TODO"). Step Functions writes the children's results too: a manifest naming
# result files, each a JSON array of child executions with their Input and Output as JSON
# text. Do that, in its layout, so that summarize reads what a real run leaves in S3.
import json  # noqa: E402
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3 import (  # noqa: E402
    ResourceEvalS3,
)


def put_results(env, resource_runtime_part, state_credentials):
    parameters = env.stack.pop()
    results = env.stack.pop()
    s3 = ResourceEvalS3._get_s3_client(
        resource_runtime_part=resource_runtime_part, state_credentials=state_credentials
    )
    map_run_arn = env.map_run_record_pool_manager.get_all().pop().map_run_arn
    prefix = parameters.get("Prefix", "")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    folder = prefix + map_run_arn.split(":")[-1] + "/"
    children = [
        {"ExecutionArn": f"{map_run_arn}:{i}", "Input": "{}", "InputDetails": {"Included": True},
         "Name": str(i), "Output": json.dumps(result), "OutputDetails": {"Included": True},
         "RedriveCount": 0, "RedriveStatus": "NOT_REDRIVABLE", "Status": "SUCCEEDED"}
        for i, result in enumerate(results or [])
    ]
    files = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    if children:
        body = json.dumps(children).encode("utf8")
        s3.put_object(Bucket=parameters["Bucket"], Key=folder + "SUCCEEDED_0.json", Body=body)
        files["SUCCEEDED"].append({"Key": folder + "SUCCEEDED_0.json", "Size": len(body)})
    manifest = {"DestinationBucket": parameters["Bucket"], "MapRunArn": map_run_arn, "ResultFiles": files}
    s3.put_object(Bucket=parameters["Bucket"], Key=folder + "manifest.json", Body=json.dumps(manifest).encode("utf8"))
    env.stack.append(
        {"MapRunArn": map_run_arn, "ResultWriterDetails": {"Bucket": parameters["Bucket"], "Key": folder + "manifest.json"}}
    )


ResourceEvalS3._handle_put_object = staticmethod(put_results)

if __name__ == "__main__":
    from moto.server import main

    port = sys.argv[1]
    os.environ["MOTO_PORT"] = port
    main(["-H", "127.0.0.1", "-p", port])
