"""Backend TLS for mod_proxy (TLSProxy*): https:// backends served by mod_bastion itself and by
mod_ssl; SNI to the backend; certificate checks against TLSProxyCA."""

import pytest

from harness import CertAuthority, curl

ENV_CGI = """#!/usr/bin/python3
import os
print("Content-Type: text/plain")
print()
print(os.environ.get("HTTPS", "-"), os.environ.get("SSL_TLS_SNI", "-"), os.environ.get("SSL_PROTOCOL", "-"))
"""


class TestProxyToTlsBackends:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory, cert_authority):
        b = cert_authority.issue(["backend.test"], key_type="ec")
        m = cert_authority.issue(["sslbackend.test"], key_type="rsa")
        s = httpd_factory()
        # Children (www-data) read TLSProxyCA files: keep them under the ServerRoot.
        other_ca = CertAuthority(s.root / "otherca", name="Some Other CA")
        s.add_modules("proxy", "proxy_http", "ssl")
        tls_port, ssl_port = s.port("https"), s.port("ssl")
        s.write_cgi("env.py", ENV_CGI)
        s.add_conf(f"""
Listen 127.0.0.1:{tls_port}
Listen 127.0.0.1:{ssl_port}
TLSEngine 127.0.0.1:{tls_port}
<VirtualHost 127.0.0.1:{tls_port}>
  ServerName backend.test
  TLSCertificate {b.cert} {b.key}
</VirtualHost>
<VirtualHost 127.0.0.1:{ssl_port}>
  ServerName sslbackend.test
  SSLEngine on
  SSLCertificateFile {m.cert}
  SSLCertificateKeyFile {m.key}
</VirtualHost>
<VirtualHost 127.0.0.1:{s.http_port}>
  # The default vhost for names it does not know; mod_proxy sends the client's Host on, so SNI
  # and the backend's vhost follow the Host header.
  ServerName front.test
  ProxyPreserveHost On
  TLSProxyEngine on
  TLSProxyCA {cert_authority.cert_path}
  ProxyPass "/tls/" "https://127.0.0.1:{tls_port}/cgi-bin/"
  ProxyPass "/ssl/" "https://127.0.0.1:{ssl_port}/cgi-bin/"
  <Proxy "https://127.0.0.1:{ssl_port}/wrongca/">
    TLSProxyCA {other_ca.cert_path}
  </Proxy>
  ProxyPass "/wrongca/" "https://127.0.0.1:{ssl_port}/wrongca/"
</VirtualHost>
<VirtualHost 127.0.0.1:{s.http_port}>
  ServerName noca.test
  ProxyPreserveHost On
  TLSProxyEngine on
  ProxyPass "/tls/" "https://127.0.0.1:{tls_port}/cgi-bin/"
</VirtualHost>
""")
        s.set_log_level("bastion", "debug")
        s.start()
        yield s
        s.stop()

    def test_proxy_to_our_own_tls_backend(self, server):
        r = curl(server.url("/tls/env.py"), headers={"Host": "backend.test"})
        assert r.status == 200, r
        assert r.text.split() == ["on", "backend.test", "TLSv1.3"]

    def test_proxy_to_mod_ssl_backend(self, server):
        r = curl(server.url("/ssl/env.py"), headers={"Host": "sslbackend.test"})
        assert r.status == 200, r
        assert r.text.split()[:2] == ["on", "sslbackend.test"]

    def test_wrong_ca_is_refused(self, server):
        server.log_allow(r"AH00898|AH01102", r"TLS to backend sslbackend\.test failed")
        r = curl(server.url("/wrongca/x"), headers={"Host": "sslbackend.test"})
        assert r.status == 502, r
        server.wait_for_log(r"\[bastion:error\].*TLS to backend sslbackend\.test failed: .*(UnknownIssuer|invalid peer certificate)")

    def test_missing_proxy_ca_is_an_error(self, server):
        server.log_allow(r"TLSProxyCA is required", r"AH00961|AH01961")
        r = curl(server.url("/tls/env.py"), headers={"Host": "noca.test"})
        assert r.status == 500, r
        server.wait_for_log(r"TLSProxyCA is required with TLSProxyEngine on")
