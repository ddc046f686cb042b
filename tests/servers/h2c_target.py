#!/usr/bin/env python3
"""An h2c server (HTTP/2 over TCP, prior knowledge) on python-hyper's h2, which sends its
SETTINGS as soon as a connection opens, before the client's preface: what a tunnel through a
proxy may carry in the same packet as the proxy's `200`. Every request is answered 200 with
the body `h2c`.

Prints "listening on http://127.0.0.1:PORT" once it accepts connections.
"""
import socket
import threading

import h2.config
import h2.connection
import h2.events


def serve_connection(sock):
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
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
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()
