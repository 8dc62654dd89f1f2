set -u
cd /tmp/w4/hD
printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null
A=/tmp/w4/hD/kA; B=/tmp/w4/hD/kB
add() { printf '%s\n' "$2" | mailer-gui --home $1 accounts add work --email ann@sender.test --host 127.0.0.6 --port 25870 --security none --allow-insecure-auth --password-stdin --default; echo "add rc=$?"; }
add $A pwA-secret
add $B pwB-other
echo "--- keyring A:"; python3 -m keyring get "mailer-gui:$A" work; echo rc=$?
echo "--- keyring B:"; python3 -m keyring get "mailer-gui:$B" work; echo rc=$?
echo "--- default service:"; python3 -m keyring get mailer-gui work; echo rc=$?
echo "--- test A"; timeout 30 mailer-gui --home $A accounts test work; echo rc=$?
echo "--- test B (wrong pw expected)"; timeout 30 mailer-gui --home $B accounts test work; echo rc=$?
echo "--- remove B"; mailer-gui --home $B accounts remove work; echo rc=$?
echo "--- keyring A after:"; python3 -m keyring get "mailer-gui:$A" work; echo rc=$?
echo "--- keyring B after:"; python3 -m keyring get "mailer-gui:$B" work; echo rc=$?
echo "--- test A after"; timeout 30 mailer-gui --home $A accounts test work; echo rc=$?
echo "--- send A"; timeout 30 mailer-gui --home $A send --to k@good.test --subject kA --body hi; echo rc=$?
