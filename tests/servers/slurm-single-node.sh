#!/bin/bash
# Copied from ../shared/slurm/single-node.sh (the team's tool), so that CI, which clones only this
# repository, can start the same single-node Slurm for tests/slurm.rs.
# A real single-node Slurm 22.05 cluster on Debian 12 without systemd, for testing job arrays.
# usage: single-node.sh start | stop      (as root; start installs the packages when missing)
# Verified: sbatch --array=0-2 runs each task with SLURM_ARRAY_TASK_ID / _COUNT / _MIN set; two tasks
# run at once on 2 cores; tasks inherit the submitting shell's open-files limit (20000 here).
# Notes: `scontrol requeue JOB_TASK` makes a task eligible again only after ~2 minutes, unless followed
# by `scontrol update JobId=JOB_TASK StartTime=now` (~3 s); finished jobs are forgotten after 5 min;
# there is no accounting (sacct): use squeue (empty when done) and scontrol show job.
set -euo pipefail
if [ "${1:-start}" = stop ]; then
  for f in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    [ -f $f ] && kill "$(cat $f)" 2>/dev/null || true; done
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi
if [ -f /run/slurmctld.pid ] && kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null && [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]; then
  sinfo; exit 0
fi

# munge: the Debian package creates /etc/munge/munge.key; create one if missing
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key; }
install -d -o munge -g munge -m 0755 /run/munge
[ -S /run/munge/munge.socket.2 ] && kill -0 "$(cat /run/munge/munged.pid 2>/dev/null)" 2>/dev/null \
  || runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null   # sanity check

install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
install -d /var/spool/slurmd
H=$(hostname -s)
NODELINE=$(slurmd -C | head -1)   # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=local
SlurmctldHost=$H
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
EnforcePartLimits=ALL
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
$NODELINE State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

/usr/sbin/slurmctld      # daemonizes, drops to SlurmUser=slurm
/usr/sbin/slurmd         # daemonizes, runs as root
for i in $(seq 1 120); do
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 0.25
done
sinfo
