# Run by src/seccomp/child_tests.rs with dash and bash under the kill-mode default filter.
set -e
x=$(echo sub); test "$x" = sub
echo a | tr a b | grep -q b
( cd /tmp && ls >/dev/null )
sleep 0.01 & wait
f=$(mktemp); echo data > "$f"; read -r line < "$f"; test "$line" = data; rm -f "$f"
trap 'trapped=1' USR1; kill -USR1 $$; test "$trapped" = 1
cat <<X >/dev/null
heredoc
X
exec 3>/dev/null; echo x >&3; exec 3>&-
umask 022; ulimit -n >/dev/null; id >/dev/null
printf '%s\n' SH-OK
