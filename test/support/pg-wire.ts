/**
 * A FATAL ErrorResponse message of PostgreSQL's wire protocol, as a server (or a pooler in front of one)
 * sends it before it closes the connection: what a TcpProxy's intercept answers in the server's place.
 */
export function fatalErrorResponse(sqlstate: string, message: string): Buffer {
  const fields = ["SFATAL", "VFATAL", `C${sqlstate}`, `M${message}`];
  const body = Buffer.concat([...fields.map((f) => Buffer.from(`${f}\0`)), Buffer.from([0])]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length + 4);
  return Buffer.concat([Buffer.from("E"), length, body]);
}
