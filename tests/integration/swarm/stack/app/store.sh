# Serves which task answered (its hostname says the node) and a health check.
mkdir -p /www
hostname > /www/who.txt
echo ok > /www/healthz
exec httpd -f -p 8000 -h /www
