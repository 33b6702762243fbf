# Shared by the stock-kernel lane's scripts (sourced, not run).
#
# The lane boots Debian's stock kernel (the package linux-image-amd64 depends on) under
# qemu-system-x86_64 with TCG, with this machine's own root filesystem shared read-only over
# virtio-9p and a tmpfs overlay on top: test binaries built on the host run unchanged in the
# guest, at their usual paths.
#
# Cache: VNET_VM_CACHE, default /var/cache/vnet-vm. It lives outside the repository on purpose:
# CI runs in a fresh clone, so a cache inside the clone would be cold on every run, while the
# machine (and /var/cache) is kept between sessions. Layout:
#   $VNET_VM_CACHE/<kernel package>/vmlinux        uncompressed ELF kernel (booted via PVH)
#   $VNET_VM_CACHE/<kernel package>/lib/modules/<kver>  module tree with modules.dep (shared over 9p)
#   $VNET_VM_CACHE/<kernel package>/initramfs-<hash>.cpio.gz  busybox + 9p/overlay modules + init
#   $VNET_VM_CACHE/current                          name of the kernel package last prepared

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_CACHE=${VNET_VM_CACHE:-/var/cache/vnet-vm}

vm_log() { echo "vm-lane: $*" >&2; }

# Paths of the prepared kernel: sets VM_KDIR, VM_KVER, VM_KERNEL, VM_INITRD (after setup ran).
vm_paths() {
  local pkg
  pkg=$(cat "$VM_CACHE/current" 2>/dev/null) || { vm_log "no kernel prepared in $VM_CACHE (run scripts/vm/setup)"; return 1; }
  VM_KDIR=$VM_CACHE/$pkg
  VM_KVER=$(cat "$VM_KDIR/kernel-version")
  VM_KERNEL=$VM_KDIR/vmlinux
  VM_INITRD=$VM_KDIR/$(cat "$VM_KDIR/initramfs-current")
  [ -s "$VM_KERNEL" ] && [ -s "$VM_INITRD" ] && [ -f "$VM_KDIR/lib/modules/$VM_KVER/modules.dep" ] ||
    { vm_log "kernel cache $VM_KDIR is incomplete (run scripts/vm/setup)"; return 1; }
}

# vm_boot RUNDIR TIMEOUT_S: boots the VM; the guest runs `sh RUNDIR/main RUNDIR` as root and
# powers off. RUNDIR is shared read-write at the same path. The serial console (the guest's
# stdout and stderr) is shown live and kept in RUNDIR/console.log. Returns qemu's status
# (124: timed out). Never trust that status alone: results are the files the guest wrote.
vm_boot() {
  local run=$1 limit=$2
  vm_paths || return 1
  # TCG, not KVM: this machine's /dev/kvm (PVM) cannot run a stock kernel, and TCG works
  # everywhere. One vCPU: under TCG a second one makes the guest slower, not faster.
  timeout -k 5 "$limit" qemu-system-x86_64 \
    -accel tcg,thread=multi,tb-size=256 -cpu max -smp "${VNET_VM_SMP:-1}" -m "${VNET_VM_MEM:-1024}" \
    -machine q35 -bios /usr/share/qemu/qboot.rom \
    -nodefaults -no-user-config -display none -no-reboot -nic none \
    -chardev stdio,id=con,signal=off -serial chardev:con \
    -kernel "$VM_KERNEL" -initrd "$VM_INITRD" \
    -append "console=ttyS0 quiet loglevel=1 panic=-1 mitigations=off nokaslr random.trust_cpu=on tsc=reliable no_timer_check 8250.nr_uarts=1 vnetvm.run=$run" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$VM_KDIR/lib/modules/$VM_KVER,mount_tag=modules,security_model=none,readonly=on" \
    -virtfs "local,path=$run,mount_tag=vnetrun,security_model=none" \
    </dev/null 2>&1 | tee "$run/console.log"
  return "${PIPESTATUS[0]}"
}

# Last lines of the console, for a VM that died or hung.
vm_console_tail() {
  echo "---- last 40 lines of the VM console ($1/console.log) ----" >&2
  if [ -s "$1/console.log" ]; then tail -n 40 "$1/console.log" >&2; else echo "(the console is empty)" >&2; fi
  echo "----" >&2
}
