"""What CloudFormation receives: template.yaml after the SAM transform (``make validate`` makes it
with the SAM translator SAM CLI uses). Every check here looks at the transformed template, where
SAM's own resources (queues, permissions, invoke configs, the API's routes) appear."""

import json
import re
import sys

import pytest


@pytest.fixture(scope="module")
def resources(transformed) -> dict:
    return transformed["Resources"]


def references(value) -> set[str]:
    """Logical ids a piece of a resource refers to (Ref, GetAtt, Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0] if isinstance(item, list) else item.split(".")[0])
            elif key == "Fn::Sub":
                text = item if isinstance(item, str) else item[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                if isinstance(item, list):
                    found |= references(item[1])
            else:
                found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def test_no_dependency_cycle(resources):
    """The cycle that made sam deploy fail (the API's URL in its own functions' environment)."""
    graph = {
        name: {r for r in references(res) | set(res.get("DependsOn", [])) if r in resources}
        for name, res in resources.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError(f"cycle: {' → '.join([*path, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    sys.setrecursionlimit(10_000)
    for name in graph:
        if name not in state:
            visit(name, [])


def alarmed(resources, namespace: str, metric: str, dimension: str) -> set[str]:
    """Logical ids an alarm watches by ``metric`` (dimension value a Ref or GetAtt)."""
    watched: set[str] = set()
    for res in resources.values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::CloudWatch::Alarm" and (
            props.get("Namespace"),
            props.get("MetricName"),
        ) == (namespace, metric):
            for d in props.get("Dimensions", []):
                if d["Name"] == dimension:
                    watched |= references(d["Value"])
    return watched


def test_every_queue_is_watched_by_an_alarm(resources):
    queues = {n for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    assert queues == {
        "AudioDeadLetterQueue",
        "UtteranceDeadLetterQueue",
        "EventsDeadLetterQueue",
        "AsyncFailureQueue",
    }, "no stray queue that SAM made and nothing watches"
    assert queues <= alarmed(
        resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"
    )


def test_every_function_has_an_errors_alarm(resources):
    functions = {n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert len(functions) == 14
    assert functions <= alarmed(resources, "AWS/Lambda", "Errors", "FunctionName")


def test_rule_targets_dead_letter_to_the_watched_queue(resources):
    rules = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"]
    ]
    assert len(rules) == 3  # sentiment, finalize, the console's feed
    for rule in rules:
        (target,) = rule["Properties"]["Targets"]
        assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}


def test_asynchronous_functions_retry_twice_then_land_on_a_watched_queue(resources):
    configs = {
        next(iter(references(r["Properties"]["FunctionName"]))): r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    assert set(configs) == {
        "AnalyzeSentimentFunction",
        "ConsoleFeedFunction",
        "FinalizeCallFunction",
        "SweepStreamsFunction",
    }
    for props in configs.values():
        assert props["MaximumRetryAttempts"] == 2
        destination = props["DestinationConfig"]["OnFailure"]["Destination"]
        assert destination == {"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]}


@pytest.mark.parametrize(
    "kind",
    [
        "AWS::DynamoDB::Table",
        "AWS::Kinesis::Stream",
        "AWS::S3::Bucket",
        "AWS::SecretsManager::Secret",
        "AWS::SQS::Queue",
    ],
)
def test_data_survives_a_stack_change(resources, kind):
    found = {n: r for n, r in resources.items() if r["Type"] == kind}
    assert found
    for name, res in found.items():
        assert (res.get("DeletionPolicy"), res.get("UpdateReplacePolicy")) == (
            "Retain",
            "Retain",
        ), name


def test_a_worst_case_transcription_batch_fits_the_timeout(resources):
    """4 utterances of the longest default length at real-time speed, plus setup, fit the
    function's timeout with the handler's reserve kept back; past that it defers records."""
    from callstream.analytics.transcripts import UTTERANCE_WORST_S
    from callstream.settings import AudioSettings

    (mapping,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and references(r["Properties"]["FunctionName"]) == {"TranscribeUtteranceFunction"}
    ]
    timeout = resources["TranscribeUtteranceFunction"]["Properties"]["Timeout"]
    worst_default = AudioSettings().utterance_max_ms / 1000 + 5
    assert mapping["BatchSize"] * worst_default <= timeout - UTTERANCE_WORST_S
    assert UTTERANCE_WORST_S >= 30 + 5  # the longest utterance the settings allow, and setup


def test_live_calls_keep_their_sockets_through_deployments_and_scale_in(resources):
    """ECS deregisters the ALB target (live sockets kept for the deregistration delay) before it
    sends SIGTERM: the delay is what a call gets, the drain after SIGTERM is the remainder."""
    (group,) = [
        r for r in resources.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup"
    ]
    attributes = {a["Key"]: a["Value"] for a in group["Properties"]["TargetGroupAttributes"]}
    assert attributes["deregistration_delay.timeout_seconds"] == "3600"  # the ALB's maximum
    (task,) = [r for r in resources.values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    (container,) = task["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert container["StopTimeout"] == 120  # Fargate's maximum
    assert float(env["CALLSTREAM_DRAIN_DEADLINE_S"]) + 10 <= container["StopTimeout"]
    role = json.dumps(resources["TaskRole"])
    assert "ecs:UpdateTaskProtection" in role  # scale-in protection while a task holds calls
