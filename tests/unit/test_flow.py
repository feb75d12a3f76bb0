"""ReadGate: reading resumes only when every reason to pause has gone."""

from tenantry.proxy.flow import ReadGate


class FakeTransport:
    def __init__(self) -> None:
        self.reading = True
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.reading = False
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.reading = True
        self.calls.append("resume")

    def is_closing(self) -> bool:
        return False


def test_two_reasons_must_both_clear_before_reading_resumes():
    transport = FakeTransport()
    gate = ReadGate()
    gate.attach(transport)  # type: ignore[arg-type]
    gate.block("broker congested")
    gate.block("too many in flight")
    gate.unblock("broker congested")
    assert not transport.reading
    gate.unblock("too many in flight")
    assert transport.reading
    assert transport.calls == ["pause", "resume"]


def test_unblocking_an_absent_reason_does_nothing():
    transport = FakeTransport()
    gate = ReadGate()
    gate.attach(transport)  # type: ignore[arg-type]
    gate.unblock("never blocked")
    assert transport.calls == []


def test_a_reason_set_before_the_transport_exists_applies_on_attach():
    transport = FakeTransport()
    gate = ReadGate()
    gate.block("connecting")
    gate.attach(transport)  # type: ignore[arg-type]
    assert not transport.reading
