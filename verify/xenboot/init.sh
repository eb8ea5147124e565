#!/bin/sh
# /init of the xenboot dom0 (PID 1 in the initramfs): start the Xen tools,
# run the guest described by /guest/boot.env with its console relayed live,
# report how it shut down and what it printed, then tell QEMU the verdict
# through isa-debug-exit (port 0xf4: 1 -> QEMU exit 3 pass, 2 -> exit 5 fail).
# Every line meant for the harness starts with "XENBOOT-<nonce>: ", the nonce
# coming from the per-boot archive, so a guest cannot forge one.
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/lib/xen-4.17/bin:/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root LC_ALL=C TZ=UTC

NONCE=unset
[ -r /guest/boot.env ] && . /guest/boot.env

say() { echo "XENBOOT-$NONCE: $*"; }

verdict() {
	say "verdict $1 $2"
	if [ "$1" = pass ]; then code='\001'; else code='\002'; fi
	printf "$code" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
	sleep 2
	poweroff -f
}

step() {
	what=$1
	shift
	"$@" >/tmp/step.log 2>&1 || {
		cat /tmp/step.log
		verdict fail "dom0: $what failed"
	}
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mkdir -p /var/run/xen /var/run/xenstored /var/lib/xen /var/lib/xenstored \
	/var/log/xen/console /var/lock /tmp /run /root
say "dom0 init"

[ "$NONCE" != unset ] || verdict fail "dom0: no /guest/boot.env in the initramfs"

for m in xen-privcmd xen-evtchn xen-gntdev xen-gntalloc xenfs; do
	step "insmod $m" insmod /lib/modules/xen/$m.ko
done
step "mount xenfs" mount -t xenfs xenfs /proc/xen
step "xenstored" xenstored --pid-file=/var/run/xenstored.pid
step "xen-init-dom0" xen-init-dom0
step "xenconsoled" xenconsoled --pid-file=/var/run/xenconsoled.pid \
	--log=guest --log-dir=/var/log/xen/console
say "dom0 ready"

say "guest begin $GUEST_NAME"
timeout "$GUEST_TIMEOUT" xl create -F -c /guest/guest.cfg 2>/tmp/xl.log
rc=$?
say "guest end rc=$rc"
# xl -F logs "Domain N has shut down, reason code R 0xR" to stderr.
reason=$(sed -n 's/.*has shut down, reason code \([0-9]*\).*/\1/p' /tmp/xl.log | head -n 1)
case "$reason" in
0) how=poweroff ;;
1) how=reboot ;;
2) how=suspend ;;
3) how=crash ;;
4) how=watchdog ;;
5) how=soft_reset ;;
*) how=unknown ;;
esac
say "guest shutdown $how"
while IFS= read -r line; do say "xl: $line"; done </tmp/xl.log
log=/var/log/xen/console/guest-$GUEST_NAME.log
say "guest log begin"
if [ -f "$log" ]; then
	base64 "$log" | while IFS= read -r line; do say "b64 $line"; done
fi
say "guest log end"

if [ "$rc" = 124 ] || [ "$rc" = 143 ]; then
	verdict fail "guest did not finish within ${GUEST_TIMEOUT}s"
elif [ "$how" != poweroff ]; then
	verdict fail "guest shut down by $how (xl exit $rc)"
elif [ "$rc" != 0 ]; then
	verdict fail "xl create exited with $rc"
fi
verdict pass "guest powered off"
