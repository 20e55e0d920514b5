"""A drained burst: N QoS 1 subscribers (clean sessions) fall behind a burst of 300 QoS 1
messages (they read nothing while it is published), then read and acknowledge everything
and go quiet. Prints the broker's RSS idle, backlogged, and QUIET seconds (default 7) after
the backlog drained, and what each subscriber still holds then.

Usage: memory_burst.py PORT BROKER_PID [N]   (raw MQTT 3.1.1 over loopback, no libraries)
"""
import os
import socket
import struct
import sys
import time

port = int(sys.argv[1])
pid = int(sys.argv[2])
N = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
MSGS = 300
def rss(): 
    for l in open(f'/proc/{pid}/status'):
        if l.startswith('VmRSS'): return int(l.split()[1])
def enc_len(n):
    out=b''
    while True:
        b=n%128; n//=128
        out+=bytes([b|(0x80 if n else 0)])
        if not n: return out
def s(x): return struct.pack('>H',len(x))+x
def connect(cid):
    c=socket.create_connection(('127.0.0.1',port))
    body=s(b'MQTT')+b'\x04\x02'+struct.pack('>H',600)+s(cid.encode())
    c.sendall(b'\x10'+enc_len(len(body))+body); c.recv(4); return c
def recv_exact(c,n):
    b=b''
    while len(b)<n:
        x=c.recv(n-len(b))
        if not x: raise EOFError
        b+=x
    return b
subs=[]
for i in range(N):
    c=connect(f'burst-sub-{i}')
    body=struct.pack('>H',1)+s(b'burst/t')+b'\x01'
    c.sendall(b'\x82'+enc_len(len(body))+body); recv_exact(c,5); subs.append(c)
time.sleep(0.5); base=rss()
p=connect('burst-pub')
for k in range(MSGS):
    body=s(b'burst/t')+struct.pack('>H',k+1)+b'x'*32
    p.sendall(b'\x32'+enc_len(len(body))+body); recv_exact(p,4)
time.sleep(1.0); peak=rss()
# every subscriber reads and acknowledges everything
for c in subs:
    got=0
    while got<MSGS:
        h=recv_exact(c,1)[0]; ln=0; mul=1
        while True:
            b=recv_exact(c,1)[0]; ln+=(b&127)*mul; mul*=128
            if not b&128: break
        body=recv_exact(c,ln)
        if h>>4==3:
            tl=struct.unpack('>H',body[:2])[0]; pid_=body[2+tl:4+tl]
            c.sendall(b'\x40\x02'+pid_); got+=1
time.sleep(float(os.environ.get("QUIET", "7")))  # housekeeping ticks
after=rss()
print(f'subs {N}: RSS idle {base} kB, backlogged {peak} kB, drained and quiet {after} kB: {(after-base)*1024//N} B per subscriber kept after the burst')
