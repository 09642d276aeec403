from tests.conftest import ClientFactory


async def test_lists_the_districts_of_chachoengsao(as_caller: ClientFactory) -> None:
    client = as_caller("analyst", "TH")
    response = await client.get("/v1/areas", params={"parent": "24", "level": "district"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["items"]) == 11
    assert body["items"][0]["name_th"] == "เมืองฉะเชิงเทรา"
