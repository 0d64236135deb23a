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


def test_sentiment_is_invoked_for_finals_not_for_a_live_lines_provisional_text(resources):
    """EventBridge's matcher (moto's) on the deployed rule: a provisional costs no invocation."""
    from moto.events.models import EventPattern

    (rule,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Events::Rule"
        and "AnalyzeSentiment" in json.dumps(r["Properties"]["Targets"])
    ]
    pattern = EventPattern.load(json.dumps(rule["EventPattern"]))

    def event(**detail: str) -> dict:
        return {"source": "callstream", "detail-type": "Utterance Transcribed", "detail": detail}

    assert pattern.matches_event(event(kind="final", text="hello"))
    assert not pattern.matches_event(event(kind="provisional", text="hell"))
    assert not pattern.matches_event({**event(kind="final"), "detail-type": "Transcript Partial"})


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


def test_the_live_lines_consumer_reads_utterances_pushed_through_its_own_fan_out_consumer(
    resources,
):
    """A standard iterator is polled about once a second a shard: the partials would wait for
    it. The mapping reads through an enhanced fan-out consumer of UtteranceStream, and the
    function may subscribe through it (the embedded stack's poller reads it the same way)."""
    from local.template import Template

    (mapping,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and references(r["Properties"]["FunctionName"]) == {"TranscribeUtteranceFunction"}
    ]
    (consumer,) = references(mapping["EventSourceArn"])
    assert resources[consumer]["Type"] == "AWS::Kinesis::StreamConsumer"
    assert references(resources[consumer]["Properties"]["StreamARN"]) == {"UtteranceStream"}
    role = resources["TranscribeUtteranceFunctionRole"]["Properties"]
    granted = [
        (s["Action"], references(s["Resource"]))
        for policy in role["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
    ]
    assert (["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"], {consumer}) in granted
    assert any(a.endswith("AWSLambdaKinesisExecutionRole") for a in role["ManagedPolicyArns"])
    (source,) = [
        s
        for s in Template({"Resources": resources}).sources()
        if s.function == "transcribe_utterance"
    ]
    assert (source.stream, source.fan_out) == ("UtteranceStream", True)


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


def _rule_value(node, parameters: dict[str, str]):
    """A CloudFormation rule's condition, evaluated over parameter values (the functions AWS
    allows in Rules that this template uses: Ref, Fn::Equals, Fn::Not, Fn::And, Fn::Or)."""
    if isinstance(node, str):
        return node
    ((name, args),) = node.items()
    if name == "Ref":
        return parameters[args]
    values = [_rule_value(a, parameters) for a in args]
    return {
        "Fn::Equals": lambda: values[0] == values[1],
        "Fn::Not": lambda: not values[0],
        "Fn::And": lambda: all(values),
        "Fn::Or": lambda: any(values),
    }[name]()


def _deploy_refuses(transformed, **given: str) -> list[str]:
    """What CloudFormation would refuse of these parameter values before creating anything:
    AllowedValues, AllowedPattern (the whole value must match) and the template's Rules."""
    declared = transformed["Parameters"]
    values = {k: given.get(k, v.get("Default", "")) for k, v in declared.items()}
    refused = []
    for name, value in given.items():
        spec = declared[name]
        if "AllowedValues" in spec and value not in spec["AllowedValues"]:
            refused.append(name)
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            refused.append(name)
    for rule in transformed.get("Rules", {}).values():
        condition = rule.get("RuleCondition")
        if condition is None or _rule_value(condition, values):
            refused += [
                a["AssertDescription"]
                for a in rule["Assertions"]
                if not _rule_value(a["Assert"], values)
            ]
    return refused


@pytest.mark.parametrize(
    ("given", "refused"),
    [
        ({}, False),  # the default: a bidirectional answer that keeps the call up
        ({"AnswerBidirectional": "false"}, True),  # listen only, nothing after the <Stream>
        ({"AnswerBidirectional": "false", "AnswerDial": "+918000000002"}, False),
        ({"AnswerBidirectional": "false", "AnswerRedirectUrl": "https://app.example.com/x"}, False),
        ({"AnswerBidirectional": "yes"}, True),
        ({"AnswerDial": "<Hangup/>"}, True),
        ({"AnswerDial": "sip:agent@example.com"}, False),
        ({"AnswerRedirectUrl": "javascript:alert(1)"}, True),
        ({"AnswerRedirectUrl": "https://a b"}, True),
        ({"AnswerRedirectUrl": "https://10.0.0.1/next"}, True),
        ({"AnswerContentType": "audio/wav"}, True),
        ({"AnswerAgent": "hal9000"}, True),
    ],
)
def test_an_answer_that_would_fail_calls_fails_the_deploy_instead(transformed, given, refused):
    """Issue 22: configuration mistakes belong at deploy time, not at the caller's ear."""
    assert bool(_deploy_refuses(transformed, **given)) is refused


@pytest.mark.parametrize(
    ("parameter", "option"), [("AnswerRedirectUrl", "redirect_url"), ("AnswerDial", "dial")]
)
def test_every_continuation_the_deploy_admits_the_answer_uses(transformed, parameter, option):
    """No value passes the deploy that the answer would then drop: the pattern is no wider
    than what the answer function accepts."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from callstream.control.api_models import AnswerOptions

    pattern = transformed["Parameters"][parameter]["AllowedPattern"]

    @settings(max_examples=1_000, deadline=None)
    @given(st.from_regex(pattern, fullmatch=True).filter(bool))
    def admitted(value):
        options = AnswerOptions(
            agent="none",
            bidirectional=False,
            content_type="audio/x-mulaw;rate=8000",
            audio_track="both",
            max_retries=3,
            **{option: value},
        )
        assert getattr(options, option) is not None

    admitted()


def test_the_answer_settings_come_from_the_parameters(transformed):
    env = transformed["Resources"]["AnswerCallFunction"]["Properties"]["Environment"]["Variables"]
    for name in ("Bidirectional", "ContentType", "Agent", "RedirectUrl", "Dial"):
        variable = "CALLSTREAM_ANSWER_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()
        assert env[variable] == {"Ref": f"Answer{name}"}
