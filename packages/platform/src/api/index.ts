export { createApiServer, type ApiServer, type ApiServerOptions } from './server.js';
