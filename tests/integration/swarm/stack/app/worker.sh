# Calls the api every second and logs the answer (bounded: 600 calls).
i=0
while [ $i -lt 600 ]; do
  printf 'GET /cgi-bin/who HTTP/1.0\r\n\r\n' | nc -w 2 "$API_HOST" 8000 | tail -1
  i=$((i + 1))
  sleep 1
done
