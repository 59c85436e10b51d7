#!/usr/bin/env bash
# `hadoop`, `hdfs` and `yarn` for the skein-jupyter sandbox: each subcommand
# maps to the Java class Hadoop's own scripts run, with the sandbox's
# configuration and jars. Written by `skein-jupyter sandbox up`.
set -euo pipefail
self=$(readlink -f "${BASH_SOURCE[0]}")
home=$(cd "$(dirname "$self")/.." && pwd)
. "$home/etc/hadoop/sandbox-env.sh"
conf=${HADOOP_CONF_DIR:-$home/etc/hadoop}
tool=$(basename "$0")

usage() {
  echo "usage: $tool SUBCOMMAND [ARGS...]" >&2
  echo "  hadoop: classpath [--glob] | fs | version" >&2
  echo "  hdfs:   classpath [--glob] | dfs | dfsadmin | getconf | namenode | datanode | version" >&2
  echo "  yarn:   classpath [--glob] | application | applicationattempt | container | logs | node | queue | rmadmin | resourcemanager | nodemanager | version" >&2
  exit 1
}

[ $# -gt 0 ] || usage
sub=$1
shift

daemon=
case "$tool:$sub" in
  *:classpath)
    if [ "${1:-}" = "--glob" ]; then
      printf '%s' "$conf"
      for jar in "$home"/lib/*.jar; do printf ':%s' "$jar"; done
      echo
    else
      echo "$conf:$home/lib/*"
    fi
    exit 0 ;;
  *:version) main=org.apache.hadoop.util.VersionInfo ;;
  hadoop:fs|hdfs:dfs) main=org.apache.hadoop.fs.FsShell ;;
  hdfs:dfsadmin) main=org.apache.hadoop.hdfs.tools.DFSAdmin ;;
  hdfs:getconf) main=org.apache.hadoop.hdfs.tools.GetConf ;;
  hdfs:namenode) main=org.apache.hadoop.hdfs.server.namenode.NameNode; daemon=namenode ;;
  hdfs:datanode) main=org.apache.hadoop.hdfs.server.datanode.DataNode; daemon=datanode ;;
  yarn:application|yarn:applicationattempt|yarn:container)
    main=org.apache.hadoop.yarn.client.cli.ApplicationCLI
    set -- "$sub" "$@" ;;
  yarn:logs) main=org.apache.hadoop.yarn.client.cli.LogsCLI ;;
  yarn:node) main=org.apache.hadoop.yarn.client.cli.NodeCLI ;;
  yarn:queue) main=org.apache.hadoop.yarn.client.cli.QueueCLI ;;
  yarn:rmadmin) main=org.apache.hadoop.yarn.client.cli.RMAdminCLI ;;
  yarn:resourcemanager) main=org.apache.hadoop.yarn.server.resourcemanager.ResourceManager; daemon=resourcemanager ;;
  yarn:nodemanager) main=org.apache.hadoop.yarn.server.nodemanager.NodeManager; daemon=nodemanager ;;
  *) usage ;;
esac

opts=(-XX:+IgnoreUnrecognizedVMOptions -XX:+UseSerialGC -Djava.net.preferIPv4Stack=true
      "-Dhadoop.log.dir=$home/logs" "-Dhadoop.home.dir=$home" "-Dyarn.log.dir=$home/logs")
for pkg in java.io java.lang java.lang.reflect java.math java.net java.text java.util \
           java.util.concurrent java.util.zip sun.security.util sun.security.x509; do
  opts+=("--add-opens=java.base/$pkg=ALL-UNNAMED")
done
if [ -n "$daemon" ]; then
  # vfork: without libhadoop every local chmod is a child process (see yarn-site.xml).
  opts+=("-Xmx${SANDBOX_HEAP_MB:-512}m" "-Dhadoop.root.logger=${HADOOP_ROOT_LOGGER:-INFO,console}"
         "-Dproc_$daemon" -Djdk.lang.Process.launchMechanism=VFORK)
else
  # Commands are short-lived: a small heap and the quick JIT tier start faster.
  opts+=(-Xmx256m -XX:TieredStopAtLevel=1 "-Dhadoop.root.logger=${HADOOP_ROOT_LOGGER:-WARN,console}")
fi
# shellcheck disable=SC2086  # HADOOP_OPTS is a list of flags, split on purpose
exec "$JAVA_HOME/bin/java" "${opts[@]}" ${HADOOP_OPTS:-} -cp "$conf:$home/share:$home/lib/*" "$main" "$@"
