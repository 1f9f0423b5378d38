import pytest
from harness import curl

FAKE = "[Mon Nov 23 10:49:37.123456 2026] [bastion:error] [pid 1:tid 2] injected {}\n"

class TestNeg:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory):
        s = httpd_factory(with_bastion=False)
        s.start()
        yield s
        s.stop()
        with open(s.error_log, "a") as f:
            f.write(FAKE.format("at-class-end"))

    def test_unallowed_warn_fails(self, server):
        with open(server.error_log, "a") as f:
            f.write(FAKE.format("in-test"))

    def test_next_is_clean(self, server):
        assert curl(server.url("/")).status == 200

    def test_failing_body_shows_log(self, server):
        with open(server.error_log, "a") as f:
            f.write(FAKE.format("with-failed-body"))
        assert False

@pytest.mark.needs_module
def test_needs_module():
    pass

class TestWithModule:
    def test_module_loads(self, httpd_factory):
        s = httpd_factory()
        s.set_log_level("bastion", "debug")
        print(s.configtest())
        s.start()
        print(s.log_lines_since_test_start())
        s.stop()
