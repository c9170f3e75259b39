// @retract/web: the retract client for browsers (gRPC-Web).
//
//   const { retract } = retractClients({ baseUrl: "https://retract.example.net", token });
//   const { job } = await retract.startRetract({ tenantId, requestId, options });
//   let progress = startProgress(job!);
//   await followJob(retract, { tenantId, jobId: job!.jobId, onEvent: (e) => (progress = applyEvent(progress, e)) });
//   // After a reload: the table from ListRetractTargets, then the events after its sequence.
//   progress = await resumeJob(retract, { tenantId, jobId });
//   await followJob(retract, { tenantId, jobId, afterSequence: progress.lastSequence, onEvent: … });
//
// The generated messages and service descriptors are under ./gen (`npm run generate`).

export * from "./client.js";
export * from "./errors.js";
export * from "./follow.js";
export * from "./progress.js";
export * from "./view.js";
export * as audit from "./gen/retract/v1/audit_service_pb.js";
export * as retractv1 from "./gen/retract/v1/retract_service_pb.js";
export * as tenants from "./gen/retract/v1/tenant_service_pb.js";
