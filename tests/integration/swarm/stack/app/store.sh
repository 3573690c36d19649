# Serves which task answered (its hostname says the node; TAG, which run) and a health check.
mkdir -p /www
echo "$(hostname) $TAG" > /www/who.txt
echo ok > /www/healthz
exec httpd -f -p 8000 -h /www
