import { execFileSync } from "node:child_process";

/**
 * Why packets cannot be dropped here (dropPackets needs nft and root), or null. A partition, a firewall
 * or NAT that forgot a flow, loses packets without a word: no close, no refusal, nothing a proxy of the
 * test could do from user space (whatever it stops reading, its kernel still acknowledges).
 */
export function whyNoPacketDrop(): string | null {
  if (process.getuid?.() !== 0) return "dropping packets needs root (nft)";
  try {
    execFileSync("nft", ["--version"], { stdio: "ignore" });
    return null;
  } catch {
    return "nft (Debian's nftables) is not installed";
  }
}

/**
 * Drops every TCP packet to and from `port` on this machine (a table of its own in nftables, named for
 * the port) until the returned function is first called: connections through it neither close nor answer.
 */
export function dropPackets(port: number): () => void {
  return dropTable(`dwop_test_drop_${port}`, [`tcp dport ${port}`, `tcp sport ${port}`]);
}

/**
 * Drops every packet of the TCP connections through local `port` that exist now, until the returned
 * function is first called; connections made later go through. What a stateful firewall or NAT that forgot
 * those flows does: neither end hears of the other again, while the network itself works.
 */
export function forgetConnections(port: number): () => void {
  const peers = execFileSync("ss", ["-Htn", "state", "established", `( sport = :${port} )`], {
    encoding: "utf8",
  })
    .split("\n")
    .map((line) => /:(\d+)\s*$/.exec(line.trim())?.[1])
    .filter((p): p is string => p !== undefined);
  if (peers.length === 0) return () => {};
  const set = `{ ${peers.join(", ")} }`;
  return dropTable(`dwop_test_forget_${port}`, [
    `tcp dport ${port} tcp sport ${set}`,
    `tcp sport ${port} tcp dport ${set}`,
  ]);
}

/**
 * Makes an nftables table of its own that drops the incoming packets each of `matches` selects; returns
 * what deletes it the first time it is called, and does nothing after.
 */
function dropTable(table: string, matches: string[]): () => void {
  execFileSync("nft", ["-f", "-"], {
    input: [
      `add table inet ${table}`,
      `add chain inet ${table} input { type filter hook input priority -10; }`,
      ...matches.map((match) => `add rule inet ${table} input ${match} drop`),
      "",
    ].join("\n"),
  });
  let done = false;
  return () => {
    if (done) return;
    done = true;
    execFileSync("nft", ["delete", "table", "inet", table]);
  };
}
