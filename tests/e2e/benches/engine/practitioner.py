"""The script practitioners run: the official Microsoft Graph Python SDK (msgraph-sdk), one
mailbox after another, find the message by its internet message id, then delete each copy
found. Pointed at graph-sim by the engine bench (tests/e2e/benches/engine/main.rs), which
times it side by side with retract.

Environment: GRAPH_SIM_GRAPH, GRAPH_SIM_LOGIN (base URLs), GRAPH_TENANT, GRAPH_CLIENT_ID,
GRAPH_CLIENT_SECRET, MESSAGE_ID and MAILBOXES (a file with one address per line).
Prints one JSON line: {"mailboxes": …, "deleted": …, "seconds": …}; the seconds cover the
mailbox loop only (after imports and the first token).
"""

import asyncio
import json
import os
import sys
import time

import httpx
from azure.core.credentials import AccessToken
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphServiceClient
from msgraph.generated.users.item.messages.messages_request_builder import MessagesRequestBuilder
from msgraph.graph_request_adapter import GraphRequestAdapter

GRAPH = os.environ["GRAPH_SIM_GRAPH"].rstrip("/")
LOGIN = os.environ["GRAPH_SIM_LOGIN"].rstrip("/")
TENANT = os.environ["GRAPH_TENANT"]
CLIENT_ID = os.environ["GRAPH_CLIENT_ID"]
CLIENT_SECRET = os.environ["GRAPH_CLIENT_SECRET"]
MESSAGE_ID = os.environ["MESSAGE_ID"]


class ClientSecretCredential:
    """Client credentials against the simulator's token endpoint (azure-identity refuses
    plain-HTTP authorities); the token is cached, as azure-identity caches it."""

    def __init__(self) -> None:
        self._token = None

    async def get_token(self, *scopes, **kwargs) -> AccessToken:
        if self._token is not None and self._token.expires_on - 60 > time.time():
            return self._token
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{LOGIN}/{TENANT}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "scope": "https://graph.microsoft.com/.default",
                },
            )
        response.raise_for_status()
        body = response.json()
        self._token = AccessToken(body["access_token"], int(time.time()) + int(body["expires_in"]))
        return self._token

    async def close(self) -> None:
        return None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *args) -> None:
        return None


async def main() -> int:
    with open(os.environ["MAILBOXES"], encoding="utf-8") as f:
        mailboxes = [line.strip() for line in f if line.strip()]
    credential = ClientSecretCredential()
    await credential.get_token()
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=["127.0.0.1"]
    )
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = f"{GRAPH}/v1.0"
    client = GraphServiceClient(request_adapter=adapter)
    literal = MESSAGE_ID.replace("'", "''")
    query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
        filter=f"internetMessageId eq '{literal}'", select=["id"]
    )
    deleted = 0
    started = time.monotonic()
    for mailbox in mailboxes:
        user = client.users.by_user_id(mailbox)
        page = await user.messages.get(
            request_configuration=RequestConfiguration(query_parameters=query)
        )
        for message in page.value or []:
            await user.messages.by_message_id(message.id).delete()
            deleted += 1
    seconds = time.monotonic() - started
    print(json.dumps({"mailboxes": len(mailboxes), "deleted": deleted, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
