from tests.apim.admin.world import (  # noqa: F401 - fixtures
    admin_a,
    admin_a_client,
    group,
    owner_a,
    owner_a_client,
    stranger,
    superuser_client,
    viewer_a,
    viewer_a_client,
    world_a,
    world_b,
)
