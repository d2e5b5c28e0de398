"""The async client against the real app through httpx.ASGITransport (no socket)."""

from pathlib import Path

import httpx
import numpy as np
import pytest

from clients import AsyncDimwatchClient, errors
from tests.clients.conftest import TOKEN, rows, running_app

pytestmark = pytest.mark.anyio


async def test_create_stream_answers_the_stream_object(app_client: AsyncDimwatchClient) -> None:
    stream = await app_client.create_stream("sensors", latent_dims=[1, 3], seed=7)

    assert (stream.name, stream.latent_dims, stream.seed) == ("sensors", (1, 3), 7)
    assert (stream.dim, stream.step, stream.rows_seen, stream.best_latent_dim) == (None, 0, 0, None)
    assert stream.device == "cpu"


async def test_create_stream_twice_raises_conflict(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")

    with pytest.raises(errors.ConflictError) as info:
        await app_client.create_stream("sensors")

    assert info.value.code == "stream_exists"


async def test_create_stream_with_a_bad_name_raises_validation_error(
    app_client: AsyncDimwatchClient,
) -> None:
    with pytest.raises(errors.ValidationError) as info:
        await app_client.create_stream("-bad name")

    assert info.value.code == "invalid_request"


async def test_list_streams_shows_created_streams(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("a")
    await app_client.create_stream("b")

    assert sorted(s.name for s in await app_client.list_streams()) == ["a", "b"]


async def test_delete_stream_removes_it(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("gone")

    await app_client.delete_stream("gone")

    with pytest.raises(errors.NotFoundError):
        await app_client.get_stream("gone")


async def test_push_binary_batch_trains_every_candidate(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")

    result = await app_client.push("sensors", rows(10), seq=0)

    assert (result.step, result.rows, result.duplicate) == (1, 10, False)
    assert [m.latent_dim for m in result.selection.models] == [2, 4, 6]
    assert result.selection.rows_seen == 10
    assert (await app_client.get_stream("sensors")).dim == 10


async def test_push_same_seq_again_is_a_duplicate(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")
    await app_client.push("sensors", rows(10), seq=0)

    again = await app_client.push("sensors", rows(10), seq=0)

    assert (again.step, again.duplicate) == (1, True)


async def test_push_seq_ahead_raises_seq_gap(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")

    with pytest.raises(errors.SeqGapError) as info:
        await app_client.push("sensors", rows(10), seq=3)

    assert info.value.expected_seq == 0


async def test_push_wrong_columns_raises_validation_error(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")
    await app_client.push("sensors", rows(10), seq=0)

    with pytest.raises(errors.ValidationError) as info:
        await app_client.push("sensors", rows(10, dim=9), seq=1)

    assert (info.value.code, info.value.message) == ("invalid_batch", "expected 10 columns, got 9")


async def test_push_to_a_missing_stream_raises_not_found(app_client: AsyncDimwatchClient) -> None:
    with pytest.raises(errors.NotFoundError):
        await app_client.push("nope", rows(2))


async def test_stream_array_continues_after_applied_batches(
    app_client: AsyncDimwatchClient,
) -> None:
    await app_client.create_stream("sensors")
    await app_client.stream_array("sensors", rows(30), batch_size=10, progress=False)

    summary = await app_client.stream_array("sensors", rows(25), batch_size=10, progress=False)

    assert (summary.batches, summary.rows, summary.duplicates) == (3, 25, 0)
    assert summary.last is not None and summary.last.step == 6


async def test_stream_array_resumed_upload_skips_applied_batches(
    app_client: AsyncDimwatchClient,
) -> None:
    await app_client.create_stream("sensors")
    X = rows(40)
    await app_client.stream_array("sensors", X[:20], batch_size=10, progress=False, start_seq=0)

    summary = await app_client.stream_array(
        "sensors", X, batch_size=10, progress=False, start_seq=0
    )

    assert (summary.batches, summary.duplicates) == (4, 2)
    assert (await app_client.get_stream("sensors")).step == 4


async def test_selection_before_any_batch_is_empty(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")

    chosen = await app_client.selection("sensors")

    assert (chosen.step, chosen.rows_seen, chosen.best_latent_dim, chosen.models) == (
        0,
        0,
        None,
        (),
    )


async def test_selection_matches_the_last_push(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")
    pushed = await app_client.push("sensors", rows(10), seq=0)

    assert await app_client.selection("sensors") == pushed.selection


async def test_collapse_has_one_flag_per_latent(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")
    await app_client.push("sensors", rows(10))

    collapse = await app_client.collapse("sensors")

    assert collapse.threshold == 1.0
    assert [len(m.collapsed) for m in collapse.models] == [2, 4, 6]


async def test_history_has_one_point_per_step(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")
    await app_client.stream_array("sensors", rows(30), batch_size=10, progress=False)

    history = await app_client.history("sensors", after=1)

    assert [p.step for p in history.data] == [2, 3]
    assert history.count == 2


async def test_model_has_the_shapes_of_its_latent_dim(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")
    await app_client.push("sensors", rows(10))

    params = await app_client.model("sensors", 4)

    assert (params.latent_dim, params.dim, params.step) == (4, 10, 1)
    assert (params.W.shape, params.V.shape, params.b.shape, params.tau2.shape) == (
        (10, 4),
        (4, 10),
        (4,),
        (4,),
    )


async def test_transform_maps_rows_to_the_best_latent_dim(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")
    pushed = await app_client.push("sensors", rows(10))

    projection = await app_client.transform("sensors", rows(3, seed=1))

    assert projection.latent_dim == pushed.selection.best_latent_dim
    assert projection.data.shape == (3, projection.latent_dim)


async def test_reconstruct_gives_rows_of_dim_d(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")
    await app_client.push("sensors", rows(10))

    projection = await app_client.reconstruct("sensors", rows(3, seed=1), latent_dim=2)

    assert (projection.latent_dim, projection.data.shape) == (2, (3, 10))


async def test_transform_before_data_raises_conflict(app_client: AsyncDimwatchClient) -> None:
    await app_client.create_stream("sensors")

    with pytest.raises(errors.ConflictError) as info:
        await app_client.transform("sensors", rows(1))

    assert info.value.code == "no_data_yet"


async def test_health_says_ok(app_client: AsyncDimwatchClient) -> None:
    assert (await app_client.health()).status == "ok"


async def test_client_without_token_raises_auth_error(tmp_path: Path) -> None:
    async with running_app(tmp_path, api_tokens=[TOKEN]) as app:
        transport = httpx.ASGITransport(app=app)
        async with AsyncDimwatchClient("http://t", transport=transport) as client:
            with pytest.raises(errors.AuthError) as info:
                await client.list_streams()

    assert (info.value.status_code, info.value.code) == (401, "unauthorized")


async def test_client_with_token_is_let_in(tmp_path: Path) -> None:
    async with running_app(tmp_path, api_tokens=[TOKEN]) as app:
        transport = httpx.ASGITransport(app=app)
        async with AsyncDimwatchClient("http://t", TOKEN, transport=transport) as client:
            assert await client.list_streams() == []


async def test_push_json_equivalent_binary_gives_the_same_scores(tmp_path: Path) -> None:
    """The binary body carries exactly the float32 rows: same scores as the JSON format."""
    X = rows(10)
    async with running_app(tmp_path) as app:
        transport = httpx.ASGITransport(app=app)
        async with AsyncDimwatchClient("http://t", transport=transport) as client:
            await client.create_stream("binary")
            await client.create_stream("json")
            binary = await client.push("binary", X)
            raw = httpx.AsyncClient(transport=transport, base_url="http://t")
            async with raw:
                answer = await raw.post(
                    "/v1/streams/json/batches", json={"data": X.astype(np.float64).tolist()}
                )

    assert answer.status_code == 200
    json_models = answer.json()["selection"]["models"]
    assert [m.bic for m in binary.selection.models] == [m["bic"] for m in json_models]
