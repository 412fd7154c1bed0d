"""Pins the behaviour of each private Ray API we rely on (orchestrator/raycompat/).

A Ray upgrade that changes one of them fails here, by name, instead of somewhere in the server.
"""

from __future__ import annotations

import inspect
import pickle

import pytest

from orchestrator.raycompat import (
    chat_request,
    deploy,
    model_cards,
    node_resources,
    replica_states,
    request_context,
    serve_handles,
)
from orchestrator.serving import openai_io


def test_request_id_is_none_outside_a_serve_request():
    from ray.serve.context import _get_serve_request_context

    assert _get_serve_request_context().request_id == ""  # what the adapter maps to None
    assert request_context.serve_request_id() is None


def test_request_id_is_read_from_the_serve_request_context():
    from ray.serve import context

    token = context._serve_request_context.set(context._RequestContext(request_id="rid-7"))
    try:
        assert request_context.serve_request_id() == "rid-7"
    finally:
        context._serve_request_context.reset(token)


def test_sanitized_chat_request_is_picklable_and_keeps_its_content():
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    request = openai_io.validate_request(body, "chat")
    clean = chat_request.sanitize_chat_request(request)
    restored = pickle.loads(pickle.dumps(clean))
    content = restored.messages[0]["content"]
    assert isinstance(content, list) and content[0]["text"] == "hi"


def test_model_card_is_listed_under_the_given_id():
    from ray.serve.llm import LLMConfig

    config = LLMConfig(model_loading_config={"model_id": "m", "model_source": "/nowhere"})
    card = model_cards.model_card("profile-a", config)
    assert card.id == "profile-a"


def test_nonblocking_deploy_is_available():
    from ray import serve

    params = inspect.signature(serve._run).parameters
    assert "_blocking" in params and params["_blocking"].default is True
    assert {"name", "route_prefix"} <= set(params)
    assert callable(deploy.deploy_nonblocking)


def test_replica_states_read_the_controllers_details_shape():
    """`raycompat.replica_states` reads `get_serve_details()`'s plain dict; Ray's own schema is
    where that shape comes from, pinned here field by field."""
    from ray.serve._private.client import ServeControllerClient
    from ray.serve._private.common import DeploymentStatus, ReplicaState
    from ray.serve.schema import (
        ApplicationDetails,
        DeploymentDetails,
        ReplicaDetails,
        ServeInstanceDetails,
    )

    assert "applications" in ServeInstanceDetails.model_fields
    assert "deployments" in ApplicationDetails.model_fields
    assert "replicas" in DeploymentDetails.model_fields
    assert "state" in ReplicaDetails.model_fields
    assert "status" in DeploymentDetails.model_fields
    assert {s.value for s in DeploymentStatus} >= replica_states.FAILED_STATUSES
    assert callable(ServeControllerClient.get_serve_details)
    details = {
        "applications": {
            "orchestrator": {
                "deployments": {
                    "profile:a": {  # as the controller sends them: the enum itself
                        "replicas": [{"state": ReplicaState.RUNNING}, {"state": "STARTING"}]
                    },
                    "profile:b": {"replicas": [], "status": DeploymentStatus.HEALTHY},
                    "profile:c": {"replicas": [], "status": DeploymentStatus.UNHEALTHY},
                }
            }
        }
    }
    states = replica_states.states_from_details(details, "orchestrator")
    assert states == {
        "profile:a": {"RUNNING": 1, "STARTING": 1},
        "profile:b": {},  # scaled to zero: closed, not failed
        "profile:c": {"FAILED": 1},
    }
    assert replica_states.states_from_details(details, "other") is None


def test_configured_handle_is_streaming_cached_and_404_for_an_unknown_model():
    from fastapi import HTTPException
    from ray.serve.llm.ingress import OpenAiIngress

    class Handle:
        def __init__(self, **options):
            self.options_set = options

        def options(self, **options):
            return Handle(**options)

    ingress = OpenAiIngress.__new__(OpenAiIngress)  # no Serve replica: only the handle cache
    OpenAiIngress.__init__(ingress, {"m": Handle()}, {"m": object()})
    handles = serve_handles.configured_handles(ingress)
    handle = handles("m")
    assert handle.options_set == {"stream": True}
    assert handles("m") is handle
    with pytest.raises(HTTPException) as caught:
        handles("other")
    assert caught.value.status_code == 404


def test_available_resources_per_node_takes_no_arguments():
    import ray._private.state

    wrapped = ray._private.state.available_resources_per_node
    assert callable(wrapped) and not inspect.signature(wrapped).parameters
    assert node_resources.available_resources_per_node.__doc__
