"""WebSockets through the TLS filter and mod_proxy: frames of 1 MiB in both directions
(mod_tls#15: large frames still drop there)."""

import asyncio
import os
import ssl

import pytest
import websockets
from websockets.asyncio.client import connect


class TestWebSocket:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory, cert_authority, ws_backend):
        c = cert_authority.issue(["ws.test"], key_type="ec")
        s = httpd_factory()
        s.add_modules("proxy", "proxy_http")
        port = s.port("https")
        s.https_port = port
        s.ca = cert_authority.cert_path
        s.add_conf(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName ws.test
  TLSCertificate {c.cert} {c.key}
  ProxyPass "/ws/" "http://127.0.0.1:{ws_backend}/" upgrade=websocket
</VirtualHost>
""")
        s.start()
        yield s
        s.stop()

    def _run(self, server, sizes):
        ctx = ssl.create_default_context(cafile=str(server.ca))
        ctx.check_hostname = False  # we connect to 127.0.0.1 and send SNI ws.test below

        async def go():
            async with connect(f"wss://127.0.0.1:{server.https_port}/ws/", ssl=ctx, server_hostname="ws.test",
                               max_size=8 * 1024 * 1024, open_timeout=10, close_timeout=5) as ws:
                for n in sizes:
                    data = os.urandom(n)
                    await ws.send(data)
                    got = await asyncio.wait_for(ws.recv(), 20)
                    assert got == data, (n, len(got))
        asyncio.run(go())

    def test_small_frames(self, server):
        self._run(server, [1, 100, 1000, 16 * 1024])

    def test_one_mib_frames_both_ways(self, server):
        self._run(server, [1024 * 1024] * 4)

    def test_mixed_sizes_on_one_connection(self, server):
        self._run(server, [3, 1024 * 1024 + 7, 5, 256 * 1024, 2 * 1024 * 1024, 1])


class TestProxySeesTls:
    """mod_proxy and mod_headers on a TLS vhost see https (REQUEST_SCHEME from our http_scheme
    hook, HTTPS from ssl_conn_is_ssl) and pass it to the backend."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory, cert_authority):
        c = cert_authority.issue(["px.test"], key_type="ec")
        s = httpd_factory(name="proxy")
        s.add_modules("proxy", "proxy_http")
        port = s.port("https")
        s.https_port = port
        s.ca = cert_authority.cert_path
        s.write_cgi("hdrs.py", "#!/usr/bin/python3\nimport os\nprint('Content-Type: text/plain')\nprint()\n"
                               "print(os.environ.get('HTTP_X_FORWARDED_PROTO', '-'), os.environ.get('HTTP_X_HTTPS', '-'), os.environ.get('HTTPS', '-'))\n")
        s.add_conf(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName px.test
  TLSCertificate {c.cert} {c.key}
  RequestHeader set X-Forwarded-Proto "expr=%{{REQUEST_SCHEME}}"
  RequestHeader set X-Https "expr=%{{HTTPS}}"
  ProxyPass "/backend/" "http://127.0.0.1:{s.http_port}/cgi-bin/"
</VirtualHost>
""")
        s.start()
        yield s
        s.stop()

    def test_backend_is_told_https(self, server):
        from harness import curl
        r = curl(f"https://px.test:{server.https_port}/backend/hdrs.py", resolve=True, cacert=server.ca)
        assert r.status == 200, r
        # The backend (plain http) sees the front end's scheme, and is itself not https.
        assert r.text.split() == ["https", "on", "-"]
