"""moto's server on loopback, for the tests. Usage: moto_launcher.py PORT

With CD2_LAMBDA_FORWARD set (the address of `cargo lambda watch`), Lambda invocations,
the Step Functions interpreter's included, go to the real Rust handlers there instead of
moto's echo; a handler's error comes back with X-Amz-Function-Error, as Lambda does it.
"""
import os
import sys
import urllib.error
import urllib.request

from moto.awslambda_simple.models import LambdaSimpleBackend

FORWARD = os.environ.get("CD2_LAMBDA_FORWARD")


def forward(self, function_name, qualifier, body, headers, response_headers):
    # An ARN or a name, maybe with a qualifier: the binary is the bare name.
    name = function_name.split(":function:")[-1].split(":")[0]
    request = urllib.request.Request(
        f"{FORWARD}/2015-03-31/functions/{name}/invocations",
        data=body if isinstance(body, bytes) else (body or "{}").encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=900) as answer:
            error = answer.headers.get("X-Amz-Function-Error")
            if error:
                response_headers["x-amz-function-error"] = error
            return answer.read()
    except urllib.error.HTTPError as e:
        response_headers["x-amz-function-error"] = "Unhandled"
        return e.read()


if FORWARD:
    LambdaSimpleBackend.invoke = forward

if __name__ == "__main__":
    from moto.server import main

    port = sys.argv[1]
    os.environ["MOTO_PORT"] = port
    main(["-H", "127.0.0.1", "-p", port])
