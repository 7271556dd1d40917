"""The whole MCP authorization flow with the official Python SDK's own OAuth client
(`mcp.client.auth.OAuthClientProvider`), against an authflow-protected notes server:

  401 -> RFC 9728 discovery -> RFC 8414 metadata -> dynamic registration -> authorization code + PKCE
  (the "browser" is scripted below: login form with its CSRF field and cookies, then consent)
  -> token exchange -> tools/call create_note, list_notes -> a refresh through the SDK's refresh path
  (the access token is marked expired, the SDK refreshes before its next request) -> list_notes again.

Environment: MCP_URL, AUTHFLOW_USERNAME, AUTHFLOW_PASSWORD, REDIRECT_URL (optional).
Prints progress to stderr and one line `RESULT {json}` to stdout; exits non-zero on any failure.
Driven by crates/authflow/tests/clients.rs.
"""

import asyncio
import json
import os
import sys
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken


def need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"set {name}")
    return value


MCP_URL = need("MCP_URL")
USERNAME = need("AUTHFLOW_USERNAME")
PASSWORD = need("AUTHFLOW_PASSWORD")
REDIRECT_URL = os.environ.get("REDIRECT_URL", "http://127.0.0.1:33419/callback")


def log(*args: object) -> None:
    print("[py]", *args, file=sys.stderr)


class FormParser(HTMLParser):
    """The first form of a page: its action, its named inputs, the values of its submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: list[str] = []
        self._in_form = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self._done:
            self._in_form = True
            self.action = a.get("action", "")
        elif self._in_form and tag == "input" and "name" in a:
            self.fields[a["name"]] = a.get("value", "")
        elif self._in_form and tag == "button" and "value" in a:
            self.buttons.append(a["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form = False
            self._done = True


async def browse(authorization_url: str) -> str:
    """Play the user agent: sign in, approve, and return the redirect to the client with the code."""
    async with httpx2.AsyncClient(follow_redirects=False) as browser:  # keeps cookies like a browser
        response = await browser.get(authorization_url, headers={"sec-fetch-site": "none"})
        page = authorization_url
        for _ in range(10):
            if response.is_redirect:
                location = urljoin(page, response.headers["location"])
                if location.startswith(REDIRECT_URL):
                    return location
                page = location
                response = await browser.get(location, headers={"sec-fetch-site": "same-origin"})
                continue
            if response.status_code != 200:
                raise RuntimeError(f"authorization page {page} answered {response.status_code}: {response.text[:300]}")
            form = FormParser()
            form.feed(response.text)
            if form.action is None:
                raise RuntimeError(f"no form on {page}: {response.text[:300]}")
            fields = dict(form.fields)
            if "password" in fields:
                fields["username"], fields["password"] = USERNAME, PASSWORD
            elif "approve" in form.buttons:
                fields["decision"] = "approve"
            else:
                raise RuntimeError(f"unexpected form on {page}: {fields} {form.buttons}")
            if not fields.get("csrf_token"):
                raise RuntimeError("the form carries no CSRF token")
            action = urljoin(page, form.action)
            origin = "{0.scheme}://{0.netloc}".format(urlparse(action))
            page = action
            response = await browser.post(
                action, data=fields, headers={"sec-fetch-site": "same-origin", "origin": origin}
            )
        raise RuntimeError("no redirect to the client")


class MemoryStorage:
    """The SDK's `TokenStorage`, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.saves = 0

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.saves += 1

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def text(result) -> str:
    if result.is_error:
        raise RuntimeError(f"tool error: {result.content}")
    return result.content[0].text


async def main() -> None:
    storage = MemoryStorage()
    callback: dict[str, str] = {}
    authorizations = []

    async def redirect_handler(url: str) -> None:
        authorizations.append(url)
        location = await browse(url)
        params = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
        if "error" in params:
            raise RuntimeError(f"authorization refused: {params}")
        callback.clear()
        callback.update(params)

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=callback["code"], state=callback.get("state"), iss=callback.get("iss"))

    provider = OAuthClientProvider(
        server_url=MCP_URL,
        client_metadata=OAuthClientMetadata(
            client_name="authflow e2e (MCP Python SDK)",
            redirect_uris=[REDIRECT_URL],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with streamable_http_client(MCP_URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = sorted(t.name for t in (await session.list_tools()).tools)
                log("tools", tools)
                created = json.loads(
                    text(await session.call_tool("create_note", {"title": "from python", "body": "written by the Python SDK"}))
                )
                listed = json.loads(text(await session.call_tool("list_notes", {})))
        before = storage.tokens

        # Mark the access token expired: the SDK refreshes it before the next request.
        provider.context.token_expiry_time = time.time() - 10
        async with streamable_http_client(MCP_URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                after_refresh = json.loads(text(await session.call_tool("list_notes", {})))
        after = storage.tokens

    result = {
        "tools": tools,
        "client_id": storage.client_info.client_id if storage.client_info else None,
        "authorization_url": authorizations[0] if authorizations else None,
        "callback_iss": callback.get("iss"),
        "authorizations": len(authorizations),
        "token_saves": storage.saves,
        "scope": after.scope if after else None,
        "created": created,
        "listed": listed,
        "after_refresh": after_refresh,
        "access_token_rotated": bool(before and after and after.access_token != before.access_token),
        "refresh_token_rotated": bool(before and after and after.refresh_token and after.refresh_token != before.refresh_token),
    }
    print("RESULT " + json.dumps(result), flush=True)


asyncio.run(main())
