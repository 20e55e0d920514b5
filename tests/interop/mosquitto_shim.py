"""Lets Mosquitto's broker tests (test/broker/*.py of eclipse/mosquitto) judge ShardMQ.

Imported before a test runs (see run-mosquitto-tests.sh). It changes only how the tests
compare what the broker sent, where MQTT leaves the broker a choice:
- a CONNACK is compared by its flags, its reason code and the properties the test expects,
  except the broker's capability values (Receive Maximum, Topic Alias Maximum, Maximum
  Packet Size, Maximum QoS, the *Available flags), which each broker sets its own way;
- where a test expects the connection to close, a CONNACK or DISCONNECT with an error
  reason code first is accepted (MQTT 5.0 lets the server say why before it closes).
Everything else is compared byte for byte, as the tests do.
"""
import struct

import mosq_test

CAPABILITIES = {0x21, 0x22, 0x24, 0x25, 0x27, 0x28, 0x29, 0x2A}
FIXED_SIZE = {0x01: 1, 0x02: 4, 0x11: 4, 0x13: 2, 0x17: 1, 0x19: 1, 0x21: 2, 0x22: 2, 0x23: 2,
              0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1}


def _recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _read_packet(sock, first):
    """The rest of a packet whose first byte was read: (remaining-length bytes, body)."""
    header, length, mult = b"", 0, 1
    while True:
        b = sock.recv(1)
        if not b:
            return header, b""
        header += b
        length += (b[0] & 127) * mult
        mult *= 128
        if not b[0] & 128:
            return header, _recv_exactly(sock, length)


def _varint(data, i):
    value, mult = 0, 1
    while True:
        b = data[i]
        i += 1
        value += (b & 127) * mult
        mult *= 128
        if not b & 128:
            return value, i


def _properties(data):
    """Properties (length-prefixed) at the start of `data`: {id: [raw values]}."""
    length, i = _varint(data, 0)
    props, end, out = data[i:i + length], 0, {}
    while end < len(props):
        pid = props[end]
        end += 1
        if pid in FIXED_SIZE:
            n = FIXED_SIZE[pid]
        elif pid == 0x26:
            kl = struct.unpack("!H", props[end:end + 2])[0]
            vl = struct.unpack("!H", props[end + 2 + kl:end + 4 + kl])[0]
            n = 4 + kl + vl
        else:
            n = 2 + struct.unpack("!H", props[end:end + 2])[0]
        out.setdefault(pid, []).append(props[end:end + n])
        end += n
    return out


def _connack_matches(got, expected):
    (e, _), (r, _) = mosq_test.remaining_length(expected), mosq_test.remaining_length(got)
    if got[0] != 0x20 or e[:2] != r[:2]:
        return False
    if len(e) == 2:
        return True
    want, have = _properties(e[2:]), _properties(r[2:])
    return all(have.get(k) == v for k, v in want.items() if k not in CAPABILITIES)


_original = mosq_test.expect_packet


def expect_packet(sock, name, expected):
    if len(expected) >= 4 and expected[0] == 0x20:
        first = sock.recv(1)
        header, body = _read_packet(sock, first) if first else (b"", b"")
        got = first + header + body
        if len(got) >= 4 and _connack_matches(got, expected):
            return True
        if mosq_test.packet_matches(name, got, expected):
            return True
        raise mosq_test.TestError
    if len(expected) == 0:
        first = sock.recv(1)
        if first and first[0] in (0x20, 0xE0):
            _, body = _read_packet(sock, first)
            code = body[1] if first[0] == 0x20 else (body[0] if body else 0)
            if code >= 0x80 or (first[0] == 0x20 and len(body) == 2 and code != 0):
                if sock.recv(1) == b"":
                    return True
            raise mosq_test.TestError
        if mosq_test.packet_matches(name, first, expected):
            return True
        raise mosq_test.TestError
    return _original(sock, name, expected)


mosq_test.expect_packet = expect_packet
