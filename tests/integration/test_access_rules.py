"""Access rules the document's checklist names ("Security group rules tested", "IAM permissions validated"),
checked against the running stack: Redis refuses what ElastiCache refuses."""

import pytest
import redis

from harness.services.redis import ELASTICACHE_RESTRICTED_COMMANDS

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(stack):
    if stack.backend != "embedded":
        pytest.skip("the restricted commands are the embedded Redis's configuration")
    client = stack.redis.client()
    yield client
    client.close()


def test_redis_does_not_know_the_commands_elasticache_restricts(own_redis):
    served = {name.decode().upper() if isinstance(name, bytes) else name.upper() for name in own_redis.command_list()}
    assert "GET" in served
    still_there = sorted(set(ELASTICACHE_RESTRICTED_COMMANDS) & served)
    assert not still_there, f"these restricted commands are still served: {still_there}"
    # The harmless ones are also tried: the server answers as ElastiCache does, unknown command.
    for args in (("CONFIG", "GET", "maxmemory"), ("DEBUG", "SLEEP", "0"), ("SAVE",)):
        with pytest.raises(redis.ResponseError, match="unknown command"):
            own_redis.execute_command(*args)


def test_redis_refuses_a_client_without_the_password(stack, own_redis):
    anonymous = stack.redis.client(password=None)
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.get("anything")
    finally:
        anonymous.close()
