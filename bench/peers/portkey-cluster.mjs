// Portkey's gateway (`build/start-server.js` of @portkey-ai/gateway) in N processes sharing one
// port, the way Node servers are scaled on one box (node:cluster, round-robin from the
// primary). The gateway listens on every interface with no option to change it; the
// benchmark keeps everything on 127.0.0.1, so each worker's listen() is pinned there.
//   node bench/peers/portkey-cluster.mjs ENTRY PORT WORKERS
import cluster from "node:cluster";
import net from "node:net";
import { pathToFileURL } from "node:url";

const [entry, port, workers = "2"] = process.argv.slice(2);

if (cluster.isPrimary) {
  for (let i = 0; i < Number(workers); i++) cluster.fork();
  const stop = () => {
    for (const worker of Object.values(cluster.workers)) worker.process.kill("SIGTERM");
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  cluster.on("exit", (worker, code) => {
    console.error(`portkey worker ${worker.process.pid} exited (${code})`);
    process.exit(1);
  });
} else {
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (first, ...rest) {
    if (typeof first === "number") return listen.call(this, first, "127.0.0.1", ...rest.filter((a) => typeof a === "function"));
    if (first && typeof first === "object" && "port" in first) return listen.call(this, { ...first, host: "127.0.0.1" }, ...rest);
    return listen.call(this, first, ...rest);
  };
  process.argv = [process.argv[0], entry, `--port=${port}`, "--headless"];
  await import(pathToFileURL(entry).href);
}
