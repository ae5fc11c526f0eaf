/** apctl's version; a test keeps it equal to the platform's and the agent's. */
export const VERSION = '0.1.0';
