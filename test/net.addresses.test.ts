import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../shared/config.ts";
import { countTasks } from "../shared/dsl/index.ts";
import {
  addressAllowed,
  forbiddenReason,
  nameAllowed,
  parseAllowList,
  parseCidr,
  parseIp,
  type Ip,
} from "../shared/net/addresses.ts";
import { checkCallbackTarget, CallbackRefused } from "../shared/net/callback-target.ts";

const ip = (text: string): Ip => {
  const parsed = parseIp(text);
  if (!parsed) throw new Error(`not an address: ${text}`);
  return parsed;
};

describe("callback address rules", () => {
  it.each([
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["0.0.0.0", "unspecified"],
    ["10.0.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.0.1", "private"],
    ["100.64.0.1", "shared (CGNAT)"],
    ["100.127.255.255", "shared (CGNAT)"],
    ["169.254.169.254", "link-local (cloud metadata)"],
    ["192.0.0.192", "reserved (cloud metadata)"],
    ["168.63.129.16", "cloud metadata"],
    ["224.0.0.251", "multicast"],
    ["255.255.255.255", "reserved"],
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["[::ffff:a9fe:a9fe]", "link-local (cloud metadata)"],
    ["::127.0.0.1", "loopback"],
    ["64:ff9b::10.0.0.1", "private"],
    ["::ffff:0:7f00:1", "loopback"], // IPv4-translated (SIIT) 127.0.0.1
    ["2002:a00:1::1", "private"], // 6to4 of 10.0.0.1
    ["fe80::1%eth0", "link-local"],
    ["fd00:ec2::254", "private (unique local)"],
    ["fc00::1", "private (unique local)"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "documentation"],
  ])("%s is off limits (%s)", (address, why) => {
    expect(forbiddenReason(ip(address))).toBe(why);
  });

  it.each([
    "93.184.216.34",
    "8.8.8.8",
    "172.32.0.1",
    "100.128.0.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "::ffff:0:808:808",
  ])("%s is a public address", (address) => {
    expect(forbiddenReason(ip(address))).toBeNull();
  });

  it("parses only well-formed addresses", () => {
    for (const bad of [
      "1.2.3",
      "1.2.3.4.5",
      "01.2.3.4",
      "256.1.1.1",
      "1::2::3",
      "12345::",
      "g::1",
      "1:2:3:4:5:6:7:8:9",
      "1.2.3.4::",
      "1.2.3.4:1::",
    ]) {
      expect(parseIp(bad), bad).toBeNull();
    }
    expect(parseIp("1:2:3:4:5:6:7:8")?.value).toBe(0x00010002000300040005000600070008n);
    expect(parseCidr("10.1.2.3/8")).toEqual({ version: 4, base: 0x0a000000n, bits: 8 });
    expect(parseCidr("10.0.0.0/33")).toBeNull();
  });

  it("reads the allow-list: CIDRs, addresses, names and *.domains; anything else fails the config", () => {
    const allow = parseAllowList(
      "10.0.0.0/8, fd00::/8 192.168.1.5,receiver.ns.svc.cluster.local,*.internal.example.",
    );
    expect(addressAllowed(ip("10.9.9.9"), allow)).toBe(true);
    expect(addressAllowed(ip("fd12::1"), allow)).toBe(true);
    expect(addressAllowed(ip("192.168.1.5"), allow)).toBe(true);
    expect(addressAllowed(ip("192.168.1.6"), allow)).toBe(false);
    expect(nameAllowed("Receiver.NS.svc.cluster.local.", allow)).toBe(true);
    expect(nameAllowed("hooks.internal.example", allow)).toBe(true);
    expect(nameAllowed("internal.example", allow)).toBe(false);
    expect(nameAllowed("evilinternal.example", allow)).toBe(false);
    expect(() => parseAllowList("10.0.0.0/40, ok.example, bad!name")).toThrow(
      "not a CIDR, an IP address or a host name: 10.0.0.0/40, bad!name",
    );
    expect(() => loadConfig({ DWOP_CALLBACK_ALLOW: "http://x/" })).toThrow(ConfigError);
    expect(loadConfig({}).DWOP_MAX_TASKS_PER_WORKFLOW).toBe(10_000);
  });

  it("checks what a URL's host is after WHATWG parsing, so other spellings of an address change nothing", async () => {
    for (const url of [
      "http://2130706433/",
      "http://0177.0.0.1/",
      "http://0x7f.0.0.1/",
      "http://127.1/",
      "http://[0:0:0:0:0:ffff:7f00:1]/",
    ]) {
      await expect(
        checkCallbackTarget(url, parseAllowList(""), null, { requireResolved: false }),
        url,
      ).rejects.toThrow(CallbackRefused);
    }
  });

  it("needs a name resolved before it is sent, and every address it resolves to must pass", async () => {
    const strict = { requireResolved: true };
    const none = parseAllowList("");
    const fails = () => Promise.reject(new Error("ENOTFOUND"));
    await expect(checkCallbackTarget("https://x.example/", none, fails, strict)).rejects.toThrow(
      "could not be resolved",
    );
    await expect(checkCallbackTarget("https://x.example/", none, null, strict)).rejects.toThrow(
      "could not be resolved",
    );
    const target = await checkCallbackTarget(
      "https://x.example/",
      none,
      () => Promise.resolve(["93.184.216.34"]),
      strict,
    );
    expect(target).toMatchObject({ host: "x.example", addresses: ["93.184.216.34"] });
    const split = () => Promise.resolve(["93.184.216.34", "::1"]);
    await expect(checkCallbackTarget("https://x.example/", none, split, strict)).rejects.toThrow(
      "off limits",
    );
  });
});

describe("countTasks", () => {
  it("counts column-1 `fun` lines as the parser sees them, and stops past the limit", () => {
    expect(countTasks("\uFEFFfun a():\r\n  x\r\nfun(\rfun\nfunny():\n fun b():\n#fun c():\nfun")).toBe(4);
    const many = "fun a():\n    pass\n".repeat(1000);
    expect(countTasks(many)).toBe(1000);
    expect(countTasks(many, 10)).toBe(11);
  });
});
