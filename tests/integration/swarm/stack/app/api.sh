# Answers /cgi-bin/who with its own hostname and the store's answer, fetched over the overlay.
mkdir -p /www/cgi-bin
cat > /www/cgi-bin/who <<'CGI'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
answer=$(printf 'GET /who.txt HTTP/1.0\r\n\r\n' | nc -w 2 "$STORE_HOST" "$STORE_PORT" | tail -1)
[ -n "$answer" ] || { echo "no answer from $STORE_HOST:$STORE_PORT"; exit 0; }
echo "api $(hostname) store $answer"
CGI
chmod +x /www/cgi-bin/who
exec httpd -f -p 8000 -h /www
