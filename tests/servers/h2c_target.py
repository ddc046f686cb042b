#!/usr/bin/env python3
"""An h2c server (HTTP/2 over TCP, prior knowledge) on python-hyper's h2, which sends its
SETTINGS as soon as a connection opens, before the client's preface: what a tunnel through a
proxy may carry in the same packet as the proxy's `200`. Every request is answered 200 with
the body `h2c`.

With `--silent-first`, its first connection goes silent after its SETTINGS: it reads and answers
nothing, and never closes (a server or middlebox that hung). With `--no-streams`, its SETTINGS
allow no stream at all (SETTINGS_MAX_CONCURRENT_STREAMS 0) and it answers nothing. With
`--count-file PATH`, the number of connections accepted so far is kept in PATH.

Prints "listening on http://127.0.0.1:PORT" once it accepts connections.
"""
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.settings


def serve_connection(sock, silent, no_streams):
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    if no_streams:
        conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 0})
    sock.sendall(conn.data_to_send())
    while silent or no_streams:
        if not sock.recv(65536):
            return
    while True:
        data = sock.recv(65536)
        if not data:
            return
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                conn.send_headers(event.stream_id, [(":status", "200"), ("content-length", "3")])
                conn.send_data(event.stream_id, b"h2c", end_stream=True)
        sock.sendall(conn.data_to_send())


def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    print(f"listening on http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    silent = "--silent-first" in sys.argv
    no_streams = "--no-streams" in sys.argv
    count_file = sys.argv[sys.argv.index("--count-file") + 1] if "--count-file" in sys.argv else None
    accepted = 0
    while True:
        sock, _ = listener.accept()
        accepted += 1
        if count_file:
            with open(count_file, "w") as f:
                f.write(str(accepted))
        threading.Thread(target=serve_connection, args=(sock, silent, no_streams),
                         daemon=True).start()
        silent = False


if __name__ == "__main__":
    main()
