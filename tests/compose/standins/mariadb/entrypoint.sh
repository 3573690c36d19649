#!/bin/sh
# The first start initialises the data directory, sets root's password (from any host) and
# creates MYSQL_DATABASE; every start then runs mariadbd with the arguments given. Options
# MariaDB does not know (MySQL's, like --default-authentication-plugin) are passed as
# --loose-..., which MariaDB ignores, as the official image's MariaDB build accepts them.
set -e
password="${MYSQL_ROOT_PASSWORD:-}"
if [ -n "${MYSQL_ROOT_PASSWORD_FILE:-}" ]; then password="$(cat "$MYSQL_ROOT_PASSWORD_FILE")"; fi
if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db > /dev/null
    mariadbd --user=mysql --skip-networking --socket=/run/mysqld/init.sock &
    until mariadb-admin --socket=/run/mysqld/init.sock ping --silent 2>/dev/null; do sleep 0.2; done
    mariadb --socket=/run/mysqld/init.sock <<SQL
CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '${password}';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('${password}');
${MYSQL_DATABASE:+CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE}\`;}
FLUSH PRIVILEGES;
SQL
    mariadb-admin --socket=/run/mysqld/init.sock --password="${password}" shutdown
fi
args=""
for arg in "$@"; do
    case "$arg" in
        --default-authentication-plugin=*) args="$args --loose-${arg#--}" ;;
        *) args="$args $arg" ;;
    esac
done
exec mariadbd --user=mysql --bind-address=0.0.0.0 $args
