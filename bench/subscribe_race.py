#!/usr/bin/env python3
"""How often a PUBLISH sent right after another connection's SUBSCRIBE, before its SUBACK,
misses the new subscriber (MQTT orders nothing across connections before the SUBACK; a
single-threaded broker never misses, a multi-shard one can when the two connections are on
different shards).

Usage: bench/subscribe_race.py PORT [ROUNDS] [--paho-ids]
Each round connects two MQTT 3.1.1 clients (random ids, or the Paho interoperability suite's
`myclientid`/`myclientid2`), sends SUBSCRIBE (QoS 1) on the second and at once a QoS 1
PUBLISH on the first, and waits 0.5 s for the SUBACK and the message on the second.
Prints how many rounds missed it.
"""
import random
import socket
import sys


def connect(port, cid):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    s.sendall(bytes([0x10, len(body)]) + body)
    ack = s.recv(4)
    assert len(ack) == 4 and ack[3] == 0, ack
    return s


def main():
    port = int(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 100
    paho = "--paho-ids" in sys.argv
    topic = b"race/t"
    sub = b"\x00\x01" + len(topic).to_bytes(2, "big") + topic + b"\x01"
    pub = len(topic).to_bytes(2, "big") + topic + b"\x00\x02" + b"x"
    want = 5 + 2 + len(pub)  # SUBACK, then the PUBLISH's header and body
    missed = 0
    for i in range(rounds):
        if paho:
            ida, idb = b"myclientid", b"myclientid2"
        else:
            ida = f"race-a{i}-{random.random()}".encode()
            idb = f"race-b{i}-{random.random()}".encode()
        a, b = connect(port, ida), connect(port, idb)
        b.sendall(bytes([0x82, len(sub)]) + sub)
        a.sendall(bytes([0x32, len(pub)]) + pub)
        b.settimeout(0.5)
        got = b""
        try:
            while len(got) < want:
                data = b.recv(100)
                if not data:
                    break
                got += data
        except socket.timeout:
            pass
        missed += len(got) < want
        a.close()
        b.close()
    print(f"missed {missed} of {rounds}")


if __name__ == "__main__":
    main()
