"""Stock-client check: the official Microsoft Graph Python SDK finds a message by its
internet message id through graph-sim and deletes it (plain DELETE, then permanentDelete
through the SDK's $batch helper).

Environment: GRAPH_SIM_GRAPH and GRAPH_SIM_LOGIN (base URLs printed by the graph-sim binary).
"""

import asyncio
import json
import os
import sys
import time
import urllib.request

import httpx
from azure.core.credentials import AccessToken
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphServiceClient
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.generated.users.item.messages.messages_request_builder import MessagesRequestBuilder
from msgraph_core.requests.batch_request_builder import BatchRequestBuilder
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem

GRAPH = os.environ["GRAPH_SIM_GRAPH"].rstrip("/")
LOGIN = os.environ["GRAPH_SIM_LOGIN"].rstrip("/")
TENANT = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
CLIENT_ID = "5d1e2c3b-4a59-4687-9a0b-1c2d3e4f5a6b"
CLIENT_SECRET = "sdk-check-secret"
MAILBOX = "alice@contoso.com"
MESSAGE_ID = "<sdk+check'1#x@contoso.com>"
BATCH_MESSAGE_ID = "<sdk-batch@contoso.com>"


class SimClientSecretCredential:
    """A client-secret credential for the simulator: azure-identity refuses plain-HTTP
    authorities, so this POSTs the client credentials itself. The token is cached because
    the SDK asks for one on every request."""

    def __init__(self) -> None:
        self._token = None
        self.token_requests = 0

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
        self.token_requests += 1
        self._token = AccessToken(body["access_token"], int(time.time()) + int(body["expires_in"]))
        return self._token

    async def close(self) -> None:
        return None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *args) -> None:
        return None


def mailbox_contents() -> dict:
    with urllib.request.urlopen(f"{GRAPH}/_sim/mailboxes/{MAILBOX}") as response:
        return json.load(response)


def folder_of(internet_message_id: str) -> list:
    contents = mailbox_contents()
    return [folder for folder, messages in contents.items() for m in messages if m["internet_message_id"] == internet_message_id]


async def find(client: GraphServiceClient, internet_message_id: str) -> list:
    literal = internet_message_id.replace("'", "''")
    query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
        filter=f"internetMessageId eq '{literal}'",
        select=["id", "internetMessageId", "conversationId", "parentFolderId"],
    )
    page = await client.users.by_user_id(MAILBOX).messages.get(
        request_configuration=RequestConfiguration(query_parameters=query)
    )
    return [m.id for m in page.value or [] if m.internet_message_id == internet_message_id]


async def main() -> int:
    credential = SimClientSecretCredential()
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=["127.0.0.1"]
    )
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = f"{GRAPH}/v1.0"
    client = GraphServiceClient(request_adapter=adapter)

    ids = await find(client, MESSAGE_ID)
    if len(ids) != 1:
        print(f"FAIL: expected one copy of {MESSAGE_ID}, found {ids}")
        return 1
    await client.users.by_user_id(MAILBOX).messages.by_message_id(ids[0]).delete()
    if await find(client, MESSAGE_ID):
        print("FAIL: message still found after DELETE")
        return 1
    if folder_of(MESSAGE_ID) != ["recoverableitemsdeletions"]:
        print(f"FAIL: deleted message is in {folder_of(MESSAGE_ID)}")
        return 1

    # permanentDelete through the SDK's $batch helper (needs the `Deprecated` package).
    batch_ids = await find(client, BATCH_MESSAGE_ID)
    info = client.users.by_user_id(MAILBOX).messages.by_message_id(batch_ids[0]).permanent_delete.to_post_request_information()
    info.headers.try_add("Content-Type", "application/json")
    info.content = b"{}"
    item = BatchRequestItem(request_information=info)
    # msgraph-core keeps the absolute URL (msgraph-sdk-python#1015); Graph wants it relative.
    if "/v1.0/" in item.url:
        item.url = item.url.split("/v1.0", 1)[1]
    batch = await BatchRequestBuilder(adapter).post(BatchRequestContent({item.id: item}))
    status = batch.get_response_by_id(item.id).status
    if status != 204 or folder_of(BATCH_MESSAGE_ID) != ["recoverableitemspurges"]:
        print(f"FAIL: batch permanentDelete answered {status}, message in {folder_of(BATCH_MESSAGE_ID)}")
        return 1

    print(
        f"SDK check PASS: msgraph-sdk found {MESSAGE_ID} and deleted it, purged {BATCH_MESSAGE_ID} "
        f"through $batch ({credential.token_requests} token request)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
