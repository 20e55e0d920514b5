# Helpers shared by bench/run.sh and bench/scale.sh (sourced, not run).

# A free TCP port on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# CPU time of process $1 so far, in clock ticks (user + system).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# A field of /proc/$1/status in kB (e.g. VmRSS, VmHWM).
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# Waits up to 5 s until something accepts connections on loopback port $1.
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
