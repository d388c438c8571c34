// The squeeze.v1 API for the browser and the Node tests: message types parsed
// at run time by protobufjs from proto/squeeze/v1/service.proto (the one
// source of truth; esbuild inlines its text into the bundle), and typed
// wrappers around the gRPC-web client.
import protobuf from 'protobufjs';
import { GrpcWebClient } from './grpc_web.js';

const SERVICE = '/squeeze.v1.CompressionService/';

export function loadTypes(protoText) {
  const root = protobuf.parse(protoText, { keepCase: true }).root;
  const t = (n) => root.lookupType(`squeeze.v1.${n}`);
  return {
    root,
    Job: t('Job'), SubmitJobRequest: t('SubmitJobRequest'), GetJobRequest: t('GetJobRequest'),
    ListJobsRequest: t('ListJobsRequest'), ListJobsResponse: t('ListJobsResponse'),
    CancelJobRequest: t('CancelJobRequest'), WatchJobRequest: t('WatchJobRequest'), JobEvent: t('JobEvent'),
    GetReportRequest: t('GetReportRequest'), GetReportResponse: t('GetReportResponse'),
    DownloadArtifactRequest: t('DownloadArtifactRequest'), DataChunk: t('DataChunk'),
  };
}

export class SqueezeApi {
  constructor(types, baseUrl = '', options = {}) {
    this.t = types;
    this.client = new GrpcWebClient(baseUrl, options);
  }
  submitJob(req, opts) { return this.client.unary(SERVICE + 'SubmitJob', this.t.SubmitJobRequest, this.t.Job, req, opts); }
  getJob(jobId, opts) { return this.client.unary(SERVICE + 'GetJob', this.t.GetJobRequest, this.t.Job, { job_id: jobId }, opts); }
  listJobs(req = {}, opts) {
    return this.client.unary(SERVICE + 'ListJobs', this.t.ListJobsRequest, this.t.ListJobsResponse, req, opts);
  }
  cancelJob(jobId, opts) { return this.client.unary(SERVICE + 'CancelJob', this.t.CancelJobRequest, this.t.Job, { job_id: jobId }, opts); }
  getReport(jobId, opts) {
    return this.client.unary(SERVICE + 'GetReport', this.t.GetReportRequest, this.t.GetReportResponse, { job_id: jobId }, opts);
  }
  // Streams events (onEvent per JobEvent) until the job ends or `signal` aborts.
  watchJob(jobId, afterSeq, onEvent, opts) {
    return this.client.call(SERVICE + 'WatchJob', this.t.WatchJobRequest, this.t.JobEvent,
      { job_id: jobId, after_seq: afterSeq }, onEvent, opts);
  }
  // The bytes of one blob (an artifact manifest or a file named in one).
  async downloadBlob(req, opts) {
    const parts = [];
    await this.client.call(SERVICE + 'DownloadArtifact', this.t.DownloadArtifactRequest, this.t.DataChunk, req,
      (c) => parts.push(c.data), opts);
    let n = 0;
    for (const p of parts) n += p.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  // A file of a job's artifact by its path in the artifact manifest, or null.
  async artifactFile(jobId, path, opts) {
    const manifest = JSON.parse(new TextDecoder().decode(await this.downloadBlob({ job_id: jobId }, opts)));
    const entry = (manifest.files || []).find((f) => f.path === path);
    if (!entry) return null;
    return this.downloadBlob({ digest: entry.sha256 }, opts);
  }
}
