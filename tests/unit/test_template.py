"""template.yaml matches the code: one function per folder, routes and their auth, encryption."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, !GetAtt, …) as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


CfnLoader.add_multi_constructor("!", _any_tag)
TEMPLATE = yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)
RESOURCES = TEMPLATE["Resources"]


def logical_id(folder: str) -> str:
    return "".join(part.title() for part in folder.split("_")) + "Function"


def test_every_function_folder_has_its_resource_and_makefile_target():
    folders = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
    functions = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}
    assert sorted(functions) == sorted(logical_id(f) for f in folders)
    for folder in folders:
        resource = functions[logical_id(folder)]
        assert resource["Properties"]["CodeUri"] == f"functions/{folder}"
        assert resource["Metadata"]["BuildMethod"] == "makefile"
        assert (
            f"build-{logical_id(folder)}:" in (ROOT / "functions" / folder / "Makefile").read_text()
        )


ROUTES = {
    ("POST", "/v1/calls/{call_uuid}/streams"): ("StartStreamFunction", "AWS_IAM"),
    ("GET", "/v1/calls/{call_uuid}/streams"): ("ListStreamsFunction", "AWS_IAM"),
    ("GET", "/v1/streams/{stream_id}"): ("GetStreamFunction", "AWS_IAM"),
    ("DELETE", "/v1/streams/{stream_id}"): ("StopStreamFunction", "AWS_IAM"),
    ("DELETE", "/v1/calls/{call_uuid}/streams"): ("StopStreamFunction", "AWS_IAM"),
    ("POST", "/v1/streams/{stream_id}/reconcile"): ("StopStreamFunction", "AWS_IAM"),
    ("POST", "/v1/streams/{stream_id}/end"): ("ControlStreamFunction", "AWS_IAM"),
    ("POST", "/v1/streams/{stream_id}/play"): ("ControlStreamFunction", "AWS_IAM"),
    ("POST", "/v1/streams/{stream_id}/checkpoint"): ("ControlStreamFunction", "AWS_IAM"),
    ("POST", "/v1/streams/{stream_id}/clear"): ("ControlStreamFunction", "AWS_IAM"),
    ("GET", "/v1/streams/{stream_id}/plays/{play_id}"): ("ControlStreamFunction", "AWS_IAM"),
    ("GET", "/console/api/streams/{stream_id}/plays/{play_id}"): (
        "ControlStreamFunction",
        "ConsoleUsers",
    ),
    ("GET", "/vobiz/answer"): ("AnswerCallFunction", "NONE"),
    ("POST", "/vobiz/answer"): ("AnswerCallFunction", "NONE"),
    ("GET", "/vobiz/stream-status"): ("StreamCallbackFunction", "NONE"),
    ("POST", "/vobiz/stream-status"): ("StreamCallbackFunction", "NONE"),
    ("GET", "/vobiz/hangup"): ("StreamCallbackFunction", "NONE"),
    ("POST", "/vobiz/hangup"): ("StreamCallbackFunction", "NONE"),
    # the console: its page is public (it holds no call data), what it reads is for its users
    ("GET", "/console"): ("ConsoleApiFunction", "NONE"),
    ("GET", "/console/assets/{name}"): ("ConsoleApiFunction", "NONE"),
    ("GET", "/console/config"): ("ConsoleApiFunction", "NONE"),
    ("GET", "/console/api/calls"): ("ConsoleApiFunction", "ConsoleUsers"),
    ("GET", "/console/api/calls/{call_uuid}/events"): ("ConsoleApiFunction", "ConsoleUsers"),
    ("GET", "/console/api/calls/{call_uuid}/streams/{stream_id}/recording"): (
        "ConsoleApiFunction",
        "ConsoleUsers",
    ),
    ("GET", "/console/api/calls/{call_uuid}/streams/{stream_id}/transcript"): (
        "ConsoleApiFunction",
        "ConsoleUsers",
    ),
    ("POST", "/console/api/streams/{stream_id}/{action}"): (
        "ControlStreamFunction",
        "ConsoleUsers",
    ),
}


def test_routes_and_their_authorisation():
    assert RESOURCES["HttpApi"]["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    found = {}
    for name, resource in RESOURCES.items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event["Type"] == "HttpApi":
                props = event["Properties"]
                authorizer = props.get("Auth", {}).get("Authorizer", "AWS_IAM")
                found[(props["Method"], props["Path"])] = (name, authorizer)
    assert found == ROUTES


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("AWS::Kinesis::Stream", lambda p: p["StreamEncryption"]["EncryptionType"] == "KMS"),
        ("AWS::SQS::Queue", lambda p: p.get("SqsManagedSseEnabled") or p.get("KmsMasterKeyId")),
        (
            "AWS::DynamoDB::Table",
            lambda p: (
                p["SSESpecification"]["SSEEnabled"]
                and p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
            ),
        ),
        (
            "AWS::S3::Bucket",
            lambda p: p["BucketEncryption"] and all(p["PublicAccessBlockConfiguration"].values()),
        ),
    ],
)
def test_data_at_rest_is_encrypted(kind, check):
    resources = [r for r in RESOURCES.values() if r["Type"] == kind]
    assert resources
    assert all(check(r["Properties"]) for r in resources)


def test_stream_server_stop_timeout_and_websocket_idle_timeout():
    container = RESOURCES["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert container["StopTimeout"] == 120
    attributes = {
        a["Key"]: a["Value"]
        for a in RESOURCES["LoadBalancer"]["Properties"]["LoadBalancerAttributes"]
    }
    assert int(attributes["idle_timeout.timeout_seconds"]) >= 3600
