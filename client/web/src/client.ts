// The three retract services over gRPC-Web, with the caller's bearer token on every call.
//
// tonic speaks gRPC and gRPC-Web, not the Connect protocol: always createGrpcWebTransport.
// Over plain HTTP the browser uses HTTP/1.1; over TLS it negotiates HTTP/2 (the server offers
// only h2 through ALPN). Server streams (Retract, WatchRetract) arrive incrementally either way.

import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { AuditService } from "./gen/retract/v1/audit_service_pb.js";
import { RetractService } from "./gen/retract/v1/retract_service_pb.js";
import { TenantService } from "./gen/retract/v1/tenant_service_pb.js";

export interface RetractClients {
  readonly tenants: Client<typeof TenantService>;
  readonly retract: Client<typeof RetractService>;
  readonly audit: Client<typeof AuditService>;
  readonly transport: Transport;
}

export interface ConnectOptions {
  /** The server's address, e.g. `http://127.0.0.1:50051` or `https://retract.example.net`. */
  readonly baseUrl: string;
  /** A caller token (JWT), sent as `authorization: Bearer <token>`; may change between calls. */
  readonly token: string | (() => string);
  /** Used instead of the global fetch (tests). */
  readonly fetch?: typeof globalThis.fetch;
}

/** Adds `authorization: Bearer <token>` unless the call already carries one. */
export function bearerToken(token: string | (() => string)): Interceptor {
  return (next) => (req) => {
    if (!req.header.has("authorization")) {
      const value = typeof token === "function" ? token() : token;
      if (value) req.header.set("authorization", `Bearer ${value.trim()}`);
    }
    return next(req);
  };
}

/** The gRPC-Web transport to `baseUrl` with the caller's token. */
export function retractTransport(options: ConnectOptions): Transport {
  return createGrpcWebTransport({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    interceptors: [bearerToken(options.token)],
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}

/** Clients of TenantService, RetractService and AuditService over one transport. */
export function retractClients(options: ConnectOptions | Transport): RetractClients {
  const transport = "baseUrl" in options ? retractTransport(options) : options;
  return {
    tenants: createClient(TenantService, transport),
    retract: createClient(RetractService, transport),
    audit: createClient(AuditService, transport),
    transport,
  };
}
